package main

// Bounds on what clients of the public port can make the bridge hold:
// connections (connLimiter), request bodies (readBody, bodyDeadline) and
// queued invocations (bridge.enqueue, in bridge.go).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

const (
	bodyFirstBuffer = 8 << 10 // a body buffer starts at this and doubles as data arrives
	maxRefusing     = 64      // connections answered 503 at once; more are just closed
	refuseLinger    = time.Second
)

var errBodyTooLarge = errors.New("request body too large")

// readBody reads a request body of at most limit bytes as it arrives: the
// buffer starts small and doubles while data comes, up to the declared
// length, so a large declared length that never arrives costs little. A
// body over limit (declared or read) is errBodyTooLarge, with what was read.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength == 0 {
		return nil, nil
	}
	if contentLength > limit {
		return nil, errBodyTooLarge
	}
	want := contentLength
	if want < 0 {
		want = limit + 1 // unknown length: one byte too many tells
	}
	size := want
	if size > bodyFirstBuffer {
		size = bodyFirstBuffer
	}
	buf := make([]byte, 0, size)
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			n := 2 * int64(cap(buf))
			if n > want {
				n = want
			}
			grown := make([]byte, len(buf), n)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && (contentLength < 0 || int64(len(buf)) == want) {
			break
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return buf, errBodyTooLarge
	}
	if len(buf) == 0 {
		return nil, nil
	}
	return buf, nil
}

// connLimiter accepts at most max connections at a time; one more is
// answered 503 and closed without reaching net/http.
type connLimiter struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refusing atomic.Int32
	refusal  []byte
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	body := string(lambdaErrorJSON("ServiceUnavailable",
		"fnctl-bridge is at its connection limit ("+strconv.Itoa(max)+", FNCTL_BRIDGE_MAX_CONNECTIONS)"))
	return &connLimiter{Listener: ln, max: int64(max), refusal: []byte(
		"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body)}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refuse(c)
	}
}

// refuse answers 503 once the request's header is in (net/http's client
// takes an answer that comes before its request for a broken connection),
// then lets the client read it: the rest of the request is drained for a
// while, as closing a socket with unread data would reset the connection and
// could discard the answer. All within refuseLinger.
func (l *connLimiter) refuse(c net.Conn) {
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseLinger))
		if !readHeaderEnd(c, 64<<10) {
			return
		}
		if _, err := c.Write(l.refusal); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// readHeaderEnd reads from r up to the end of an HTTP header (an empty
// line), at most max bytes; false if there was none.
func readHeaderEnd(r io.Reader, max int) bool {
	var buf [4096]byte
	tail := 0 // bytes of the previous read kept at the front of buf
	for read := 0; read < max; {
		n, err := r.Read(buf[tail:])
		read += n
		data := buf[:tail+n]
		if bytes.Contains(data, crlfcrlf) || bytes.Contains(data, lflf) {
			return true
		}
		if err != nil {
			return false
		}
		tail = copy(buf[:], data[len(data)-min3(len(data)):])
	}
	return false
}

func min3(n int) int {
	if n < 3 {
		return n
	}
	return 3
}

// limitedConn frees its place in the limiter when closed.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}

// CloseWrite keeps net/http's graceful close (it half-closes TCP connections).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// The public server's connection, for body deadlines (http.Server.ConnContext).
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// bodyDeadline gives the rest of r's body until d from now; the returned
// function lifts the deadline. (http.ResponseController, which does this,
// needs Go 1.20; images may build the bridge with Go 1.19.)
func bodyDeadline(r *http.Request, d time.Duration) (lift func()) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if c == nil {
		return func() {}
	}
	c.SetReadDeadline(time.Now().Add(d))
	return func() { c.SetReadDeadline(time.Time{}) }
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
