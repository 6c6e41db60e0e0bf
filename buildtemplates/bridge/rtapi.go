package main

// A small HTTP/1.1 server for the Runtime API listeners.
//
// The Runtime API has five fixed routes, is spoken by one local client per
// listener, and carries one exchange per event in each direction, so
// net/http's general machinery (a context, a Request with a Header map and a
// URL, a background reader goroutine per request, a response header map that
// is cloned and sorted) was most of the bridge's per-request CPU. This server
// reads the request line and the few headers it needs by hand, keeps
// connections alive, and writes every answer with one write. It still speaks
// enough HTTP/1.1 for any client: Content-Length and chunked request bodies
// (with trailers, which aws-lambda-go uses to report streamed errors),
// Expect: 100-continue, HTTP/1.0 keep-alive, Connection: close, HEAD.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	rtHeaderTimeout  = time.Minute // for a request whose header is not yet complete
	rtMaxHeaderBytes = 1 << 20     // header, and trailer: as net/http's DefaultMaxHeaderBytes
	rtMaxChunkLine   = 4096        // a chunk-size line, as net/http's chunked reader
	rtMaxDiscard     = 256 << 10   // unread request body skipped to keep a connection
	rtInlineBody     = 64 << 10    // larger response bodies go out with writev
)

// rtServer serves one invoker's Runtime API listener.
type rtServer struct {
	inv *invoker
	ln  net.Listener

	mu     sync.Mutex
	conns  map[*rtConn]struct{}
	closed bool
}

func newRTServer(inv *invoker, ln net.Listener) *rtServer {
	return &rtServer{inv: inv, ln: ln, conns: make(map[*rtConn]struct{})}
}

func (s *rtServer) serve() {
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			var ne net.Error
			if closed || !errors.As(err, &ne) || !ne.Timeout() && !isTemporary(err) {
				return
			}
			// EMFILE and friends: back off as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := &rtConn{s: s, nc: nc, br: bufio.NewReaderSize(nc, 4096)}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Close closes the listener and every connection.
func (s *rtServer) Close() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*rtConn]struct{}{}
	s.mu.Unlock()
	s.ln.Close()
	for c := range conns {
		c.nc.Close()
	}
}

// rtRequest is the part of a request the Runtime API handlers look at.
type rtRequest struct {
	method  []byte
	path    []byte
	errType string // Lambda-Runtime-Function-Error-Type header
	body    rtBody
}

// contentLength is the declared body length, or -1 for a chunked body.
func (r *rtRequest) contentLength() int64 {
	if r.body.chunked {
		return -1
	}
	return r.body.remaining
}

type rtConn struct {
	s   *rtServer
	nc  net.Conn
	br  *bufio.Reader
	raw syscall.RawConn // for peerGone

	line    []byte // request line (kept while the headers are read)
	scratch []byte // long header lines
	out     []byte // response buffer
	crlf    bool   // the last line read ended with CRLF, not a bare LF

	req        rtRequest
	http10     bool // HTTP/1.0 request
	keepAlive  bool // HTTP/1.0 request asked for keep-alive
	head       bool // HEAD request: no body in the answer
	closeAfter bool // close the connection after this answer
	replied    bool
}

var errRTLineTooLong = errors.New("header too large")

func (c *rtConn) close() {
	c.nc.Close()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
}

func (c *rtConn) serve() {
	defer c.close()
	for {
		// Wait, without a deadline, for the next request (as net/http does
		// with no IdleTimeout); then give a slow header rtHeaderTimeout.
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		timed := !headerBuffered(c.br)
		if timed {
			c.nc.SetReadDeadline(time.Now().Add(rtHeaderTimeout))
		}
		status, err := c.readRequest()
		if timed {
			c.nc.SetReadDeadline(time.Time{})
		}
		if err != nil {
			if status != 0 {
				c.closeAfter = true
				c.replyText(status, err.Error())
			}
			return
		}
		c.s.inv.serveRuntime(c, &c.req)
		if !c.replied || c.closeAfter {
			return
		}
	}
}

// headerBuffered reports whether a whole request header is already buffered.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
)

// readLine returns the next line without its line ending. The slice is valid
// until the next read. The line, with its ending, is taken from *budget: a
// line longer than what is left fails with errRTLineTooLong.
func (c *rtConn) readLine(budget *int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.scratch = append(c.scratch[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.scratch) > *budget {
				return nil, errRTLineTooLong
			}
			line, err = c.br.ReadSlice('\n')
			c.scratch = append(c.scratch, line...)
		}
		line = c.scratch
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) > *budget {
		return nil, errRTLineTooLong
	}
	*budget -= len(line)
	line = line[:len(line)-1]
	c.crlf = false
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line, c.crlf = line[:n-1], true
	}
	return line, nil
}

// readRequest reads a request line and header into c.req. On error, a
// non-zero status is the answer to give before closing the connection.
func (c *rtConn) readRequest() (status int, err error) {
	c.req = rtRequest{}
	budget := rtMaxHeaderBytes // for the request line and the header
	c.http10, c.keepAlive, c.head, c.closeAfter, c.replied = false, false, false, false, false

	line, err := c.readLine(&budget)
	for err == nil && len(line) == 0 { // RFC 7230 3.5: ignore a leading empty line
		line, err = c.readLine(&budget)
	}
	if err != nil {
		if err == errRTLineTooLong {
			return http.StatusRequestURITooLong, err
		}
		return 0, err
	}
	c.line = append(c.line[:0], line...)
	method, rest, ok1 := bytes.Cut(c.line, sp)
	target, proto, ok2 := bytes.Cut(rest, sp)
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 {
		return http.StatusBadRequest, errors.New("malformed request line")
	}
	switch {
	case string(proto) == "HTTP/1.1":
	case string(proto) == "HTTP/1.0":
		c.http10 = true
	case len(proto) == 8 && string(proto[:7]) == "HTTP/1." && proto[7] >= '0' && proto[7] <= '9':
	default:
		return http.StatusHTTPVersionNotSupported, errVersion
	}
	c.req.method = method
	c.head = string(method) == "HEAD"

	// origin-form, or absolute-form (http://host/path)
	if target[0] != '/' {
		if i := bytes.Index(target, []byte("://")); i > 0 {
			target = target[i+3:]
			if j := bytes.IndexByte(target, '/'); j >= 0 {
				target = target[j:]
			} else {
				target = []byte("/")
			}
		}
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 { // a "#" is part of the path, as in net/http
		target = target[:i]
	}
	if bytes.IndexByte(target, '%') >= 0 {
		p, err := url.PathUnescape(string(target))
		if err != nil {
			return http.StatusBadRequest, errors.New("malformed request path")
		}
		target = []byte(p)
	}
	c.req.path = target

	var (
		haveCL, chunked, connClose, connKeep bool
		cl                                   int64
		te                                   bool
	)
	for {
		h, err := c.readLine(&budget)
		if err != nil {
			if err == errRTLineTooLong {
				return http.StatusRequestHeaderFieldsTooLarge, err
			}
			return 0, err
		}
		if len(h) == 0 {
			break
		}
		name, value, err := splitField(h)
		if err != nil {
			return http.StatusBadRequest, err
		}
		switch {
		case foldEq(name, "Content-Length"):
			n, ok := parseDecimal(value)
			if !ok || haveCL && n != cl {
				return http.StatusBadRequest, errors.New("bad Content-Length")
			}
			haveCL, cl = true, n
		case foldEq(name, "Transfer-Encoding"):
			if c.http10 {
				// RFC 9112 6.1: the framing of such a message is faulty.
				return http.StatusBadRequest, errTE10
			}
			if te {
				return http.StatusBadRequest, errors.New("repeated Transfer-Encoding")
			}
			te = true
			if !foldEq(value, "chunked") {
				return http.StatusNotImplemented, errors.New("unsupported transfer encoding")
			}
			chunked = true
		case foldEq(name, "Connection"):
			if !validField(name, value) {
				return http.StatusBadRequest, errHeaderField
			}
			connClose = connClose || hasToken(value, "close")
			connKeep = connKeep || hasToken(value, "keep-alive")
		case foldEq(name, "Expect") && len(value) > 0: // net/http's server ignores an empty one
			if !foldEq(value, "100-continue") {
				return http.StatusExpectationFailed, errExpect
			}
			c.req.body.needContinue = !c.http10
		case foldEq(name, "Lambda-Runtime-Function-Error-Type"):
			if c.req.errType == "" {
				c.req.errType = string(value)
			}
		}
	}
	if haveCL && te {
		// RFC 9112 6.3: a request smuggling attempt, or at best ambiguous.
		return http.StatusBadRequest, errBothLengths
	}
	if c.http10 {
		c.keepAlive = connKeep && !connClose
		c.closeAfter = !c.keepAlive
	} else {
		c.closeAfter = connClose
	}
	b := &c.req.body
	b.c = c
	switch {
	case chunked:
		b.chunked = true
	case haveCL:
		b.remaining = cl
		b.eof = cl == 0
	default:
		b.eof = true
	}
	if b.eof {
		b.needContinue = false
	}
	return 0, nil
}

var (
	sp    = []byte(" ")
	colon = []byte(":")

	errFolding     = errors.New("obsolete line folding")
	errHeaderField = errors.New("malformed header line")

	// Refusals of requests net/http's ReadRequest accepts.
	errVersion     = errors.New("unsupported protocol version")
	errExpect      = errors.New("unsupported Expect")
	errBothLengths = errors.New("both Content-Length and Transfer-Encoding")
	errTE10        = errors.New("Transfer-Encoding in an HTTP/1.0 request")
)

// splitField splits a header or trailer line into name and value, the value
// without the optional whitespace around it (RFC 9110 5.5: spaces and tabs
// only; a vertical tab is part of a value, as in net/http).
func splitField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, errFolding
	}
	name, value, ok := bytes.Cut(line, colon)
	if !ok || len(name) == 0 || bytes.IndexAny(name, " \t") >= 0 {
		return nil, nil, errHeaderField
	}
	return name, trimOWS(value), nil
}

// validField reports whether name is a token and value has no control
// characters but tabs (RFC 9110 5.1, 5.5), as net/http's textproto checks.
func validField(name, value []byte) bool {
	for _, ch := range name {
		if ch >= 0x80 || !isTokenByte[ch] {
			return false
		}
	}
	for _, ch := range value {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

var isTokenByte = func() (t [128]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch], t[ch-'a'+'A'] = true, true
	}
	for _, ch := range "!#$%&'*+-.^_`|~" {
		t[ch] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// foldEq compares an ASCII header token case-insensitively.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(ch byte) byte {
	if 'A' <= ch && ch <= 'Z' {
		return ch + 'a' - 'A'
	}
	return ch
}

// hasToken reports whether a comma-separated header value holds token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if foldEq(trimOWS(t), token) {
			return true
		}
	}
	return false
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// rtBody reads a request body: Content-Length or chunked (with trailers).
type rtBody struct {
	c            *rtConn
	chunked      bool
	remaining    int64 // of the body, or of the current chunk
	inChunk      bool  // a chunk's data has been started (its CRLF is due)
	excess       int64 // chunked framing bytes beyond what the data allows
	eof          bool
	err          error
	needContinue bool // Expect: 100-continue not yet answered
	sentContinue bool

	trailerType string // Lambda-Runtime-Function-Error-Type trailer
	trailerBody string // Lambda-Runtime-Function-Error-Body trailer
}

var (
	errChunked       = errors.New("malformed chunked encoding")
	errTrailerField  = errors.New("malformed trailer line")
	errChunkOverhead = errors.New("chunked encoding contains too much non-data")
)

// malformedBody reports whether err, from an rtBody, is the client's
// mistake (to be answered 400) rather than a broken connection.
func malformedBody(err error) bool {
	return err == errChunked || err == errTrailerField || err == errChunkOverhead || err == errRTLineTooLong
}

func (b *rtBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.needContinue {
		b.needContinue = false
		b.sentContinue = true
		if _, err := io.WriteString(b.c.nc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.chunked && b.remaining == 0 {
		if err := b.nextChunk(); err != nil {
			if err != io.EOF {
				b.err = err
			}
			return 0, err
		}
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.br.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
		return n, err
	}
	if b.remaining == 0 && !b.chunked {
		b.eof = true
	}
	return n, nil
}

// nextChunk reads up to the next chunk's data; io.EOF after the last chunk
// and the trailer. The framing follows net/http's chunked reader
// (net/http/internal/chunked.go): lines end with CRLF, a size is up to 16 hex
// digits with optional trailing whitespace before its extensions (which are
// ignored), and the bytes that are not data may not outgrow the data by more
// than 16 KiB (16 bytes a chunk and twice its size are free), so one-byte
// chunks are fine but long extensions on tiny chunks are not.
func (b *rtBody) nextChunk() error {
	c := b.c
	if b.inChunk {
		left := rtMaxChunkLine
		line, err := c.readBodyLine(&left)
		if err != nil {
			return err
		}
		if len(line) != 0 || !c.crlf {
			return errChunked
		}
		b.inChunk = false
	}
	left := rtMaxChunkLine
	line, err := c.readBodyLine(&left)
	if err != nil {
		return err
	}
	if !c.crlf || bytes.IndexByte(line, '\r') >= 0 {
		return errChunked
	}
	b.excess += int64(len(line)) + 2 // as net/http counts: with the CRLF after the data
	line = bytes.TrimRight(line, " \t")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 || len(line) > 16 {
		return errChunked
	}
	var n uint64
	for _, ch := range line {
		switch {
		case ch >= '0' && ch <= '9':
			ch -= '0'
		case ch >= 'a' && ch <= 'f':
			ch -= 'a' - 10
		case ch >= 'A' && ch <= 'F':
			ch -= 'A' - 10
		default:
			return errChunked
		}
		n = n<<4 | uint64(ch)
	}
	if n > 1<<62 {
		return errChunked
	}
	if b.excess -= 16 + 2*int64(n); b.excess < 0 {
		b.excess = 0
	} else if b.excess > 16<<10 {
		return errChunkOverhead
	}
	if n > 0 {
		b.remaining, b.inChunk = int64(n), true
		return nil
	}
	// Last chunk: the trailer follows, up to an empty line, bounded as a
	// header is. Its field lines may end with a bare LF, as header lines
	// may; its end must be CRLF CRLF (net/http looks for one).
	left = rtMaxHeaderBytes
	crlf := true // of the last-chunk line
	for {
		line, err := c.readBodyLine(&left)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			if !crlf || !c.crlf {
				return errChunked
			}
			break
		}
		crlf = c.crlf
		name, value, err := splitField(line)
		if err != nil || !validField(name, value) {
			return errTrailerField
		}
		switch {
		case b.trailerType == "" && foldEq(name, "Lambda-Runtime-Function-Error-Type"):
			b.trailerType = string(value)
		case b.trailerBody == "" && foldEq(name, "Lambda-Runtime-Function-Error-Body"):
			b.trailerBody = string(value)
		}
	}
	b.eof = true
	return io.EOF
}

// readBodyLine reads a chunk-size, chunk-ending or trailer line. Each has its
// own budget: a body of many small chunks may be as long as any other.
func (c *rtConn) readBodyLine(budget *int) ([]byte, error) {
	line, err := c.readLine(budget)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return line, err
}

// settle deals with an unread request body before answering, as net/http
// does: skip a small rest, otherwise close the connection after the answer.
func (c *rtConn) settle() {
	b := &c.req.body
	if b.eof || c.closeAfter {
		return
	}
	if b.err != nil || b.needContinue {
		// A broken body, or a client that may or may not send its body.
		c.closeAfter = true
		return
	}
	n, err := io.CopyN(io.Discard, b, rtMaxDiscard+1)
	if err != io.EOF || n > rtMaxDiscard {
		c.closeAfter = true
	}
}

// reply answers with a JSON body.
func (c *rtConn) reply(status int, body []byte) {
	c.send(c.startReply(status, len(body)), body)
}

// startReply settles the request body and returns the status line and the
// JSON framing headers of an answer in c's buffer; more header lines
// ("Name: value\r\n") may be appended before send.
func (c *rtConn) startReply(status, bodyLen int) []byte {
	c.settle()
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(bodyLen), 10)
	return append(out, "\r\n"...)
}

// appendHeader appends a header line; CR and LF in the value become spaces.
func appendHeader(out []byte, name, value string) []byte {
	out = append(out, name...)
	out = append(out, ": "...)
	i := len(out)
	out = append(out, value...)
	for ; i < len(out); i++ {
		if out[i] == '\r' || out[i] == '\n' {
			out[i] = ' '
		}
	}
	return append(out, "\r\n"...)
}

// replyText answers a malformed request (the connection closes after it).
func (c *rtConn) replyText(status int, msg string) {
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	body := strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n"...)
	c.head = false
	c.send(out, []byte(body))
}

func (c *rtConn) send(out, body []byte) {
	switch {
	case c.closeAfter:
		out = append(out, "Connection: close\r\n"...)
	case c.http10:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	if c.head {
		body = nil
	}
	var err error
	if len(body) <= rtInlineBody {
		out = append(out, body...)
		_, err = c.nc.Write(out)
	} else {
		bufs := net.Buffers{out, body}
		_, err = bufs.WriteTo(c.nc)
	}
	if cap(out) <= 4*rtInlineBody {
		c.out = out[:0]
	} else {
		c.out = nil
	}
	c.replied = true
	if err != nil {
		c.closeAfter = true
	}
}

// peerGone reports whether the client has closed (or reset) the connection,
// without consuming anything it sent.
func (c *rtConn) peerGone() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		c.raw = rc
	}
	gone := false
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true
	})
	return gone || err != nil
}
