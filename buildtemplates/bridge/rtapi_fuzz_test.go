// net/http as of Go 1.22, not as of the go line in go.mod (an empty
// Content-Length is an error, not "read to the end").
//go:debug httplaxcontentlength=0

package main

// The Runtime API server's request parser against net/http's: the same bytes
// go to rtConn.readRequest (then its body reader) and to http.ReadRequest
// (then Request.Body), and what each accepts is compared. `go test` runs the
// seeds below and testdata/fuzz/FuzzRequestParser; `go test -fuzz
// FuzzRequestParser` looks for more.
//
// Where both accept a request they must agree on everything that frames it
// (the body and where the next request starts) and on what the routes see
// (method, path, keep-alive, the error trailers). Where they disagree on
// accepting it, the reason must be one listed in parserDisagreement.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

type parseResult struct {
	headerErr  error // the request line or header was refused
	bodyErr    error // the body was malformed or cut short
	method     string
	path       string
	closeAfter bool
	body       []byte
	consumed   int // bytes of the input used by the request
	errType    string
	errBody    string
	req        *http.Request // net/http's
}

func (p parseResult) ok() bool { return p.headerErr == nil && p.bodyErr == nil }

// discardConn is the net.Conn an rtConn writes 100-continue answers to.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

func parseWithRTConn(data []byte) parseResult {
	src := bytes.NewReader(data)
	c := &rtConn{nc: discardConn{}, br: bufio.NewReaderSize(src, 4096)}
	var p parseResult
	if _, err := c.readRequest(); err != nil {
		p.headerErr = err
		return p
	}
	p.method, p.path, p.closeAfter = string(c.req.method), string(c.req.path), c.closeAfter
	p.body, p.bodyErr = io.ReadAll(&c.req.body)
	p.consumed = len(data) - src.Len() - c.br.Buffered()
	p.errType, p.errBody = c.req.body.trailerType, c.req.body.trailerBody
	return p
}

func parseWithNetHTTP(data []byte) parseResult {
	src := bytes.NewReader(data)
	br := bufio.NewReaderSize(src, 4096)
	var p parseResult
	req, err := http.ReadRequest(br)
	if err != nil {
		p.headerErr = err
		return p
	}
	p.req, p.method, p.path, p.closeAfter = req, req.Method, req.URL.Path, req.Close
	p.body, p.bodyErr = io.ReadAll(req.Body)
	p.consumed = len(data) - src.Len() - br.Buffered()
	p.errType = req.Trailer.Get("Lambda-Runtime-Function-Error-Type")
	p.errBody = req.Trailer.Get("Lambda-Runtime-Function-Error-Body")
	return p
}

// fieldLines returns the raw header lines of data (after the request line,
// up to the first empty one), as they were sent.
func fieldLines(data []byte) [][]byte {
	lines := bytes.Split(data, []byte("\n"))
	for len(lines) > 0 && len(bytes.TrimSuffix(lines[0], []byte("\r"))) == 0 {
		lines = lines[1:] // leading empty lines
	}
	var out [][]byte
	for i := 1; i < len(lines); i++ {
		l := bytes.TrimSuffix(lines[i], []byte("\r"))
		if len(l) == 0 {
			break
		}
		out = append(out, l)
	}
	return out
}

func hasField(data []byte, name string) bool {
	for _, l := range fieldLines(data) {
		if n, _, ok := bytes.Cut(l, colon); ok && foldEq(n, name) {
			return true
		}
	}
	return false
}

// parserDisagreement explains why the two parsers may disagree on accepting
// data, or returns "" if they must not. Each reason is checked against the
// input, not only against this parser's error.
func parserDisagreement(data []byte, ours, std parseResult) string {
	if std.ok() && !ours.ok() {
		// Refusals net/http's ReadRequest leaves to its server or does not make.
		req, e := std.req, ours.headerErr
		if errors.Is(ours.bodyErr, errTrailerField) || errors.Is(e, errHeaderField) {
			for _, h := range []http.Header{req.Header, req.Trailer} {
				for name := range h {
					if strings.ContainsAny(name, " \t") {
						return "whitespace in a field name (net/http's server refuses it in a header too)"
					}
				}
			}
		}
		switch {
		case errors.Is(e, errBothLengths) && hasField(data, "Content-Length") && hasField(data, "Transfer-Encoding"):
			return "Content-Length with Transfer-Encoding (RFC 9112 6.3), which net/http resolves as chunked"
		case errors.Is(e, errTE10) && req.ProtoMinor == 0 && hasField(data, "Transfer-Encoding"):
			return "Transfer-Encoding in an HTTP/1.0 request, which net/http ignores"
		case errors.Is(e, errExpect):
			for _, v := range req.Header.Values("Expect") {
				if v != "" && !strings.EqualFold(v, "100-continue") {
					return "an Expect other than 100-continue (net/http's server answers 417 too)"
				}
			}
		case errors.Is(e, errVersion) && req.ProtoMajor != 1:
			return "an HTTP version other than 1.x (net/http's server answers 505 too)"
		case errors.Is(e, errFolding):
			for _, l := range fieldLines(data) {
				if l[0] == ' ' || l[0] == '\t' {
					return "obsolete line folding (RFC 9112 5.2 lets a server refuse it)"
				}
			}
		}
		return ""
	}
	return ""
}

// leniency undoes, in a copy of data, the first thing net/http's ReadRequest
// refused with err that this parser does not check: characters of the method
// or the request target, a leading empty line, a header line with characters
// net/http does not allow (and that this parser ignores). It returns "" if
// err is something else.
func leniency(data []byte, err error) (clean []byte, what string) {
	msg := err.Error()
	start := 0
	for {
		if bytes.HasPrefix(data[start:], []byte("\n")) {
			start++
		} else if bytes.HasPrefix(data[start:], []byte("\r\n")) {
			start += 2
		} else {
			break
		}
	}
	if start > 0 && strings.Contains(msg, "malformed HTTP request") {
		return data[start:], "a leading empty line (RFC 9112 2.2 lets a server ignore it)"
	}
	end := bytes.IndexByte(data[start:], '\n')
	if end < 0 {
		return nil, ""
	}
	end += start
	line := bytes.TrimSuffix(data[start:end], []byte("\r"))
	method, rest, _ := bytes.Cut(line, sp)
	target, proto, _ := bytes.Cut(rest, sp)
	rewrite := func(method, target []byte) []byte {
		out := append([]byte(nil), data[:start]...)
		out = append(append(append(append(append(out, method...), ' '), target...), ' '), proto...)
		return append(out, data[start+len(line):]...)
	}
	switch {
	case strings.Contains(msg, "invalid method"):
		return rewrite([]byte("GET"), target), "method characters"
	case strings.HasPrefix(msg, "parse ") || strings.Contains(msg, "invalid URI for request"):
		return rewrite(method, []byte("/")), "request target syntax"
	case strings.HasPrefix(msg, "malformed MIME header line: "):
		bad := strings.TrimPrefix(msg, "malformed MIME header line: ")
		if q, err := strconv.Unquote(bad); err == nil {
			bad = q
		}
		// net/http quotes the line with its key canonicalised and its end trimmed.
		return dropFieldLine(data, end+1, func(l []byte) bool {
			return strings.EqualFold(strings.TrimRight(string(l), " \t"), strings.TrimRight(bad, " \t"))
		}), "characters in a header this parser ignores"
	case msg == "too many Host headers":
		hosts := 0
		return dropFieldLine(data, end+1, func(l []byte) bool {
			if n, _, _ := bytes.Cut(l, colon); foldEq(n, "Host") {
				hosts++
			}
			return hosts == 2
		}), "a repeated Host header, which this parser ignores"
	}
	return nil, ""
}

// dropFieldLine returns a copy of data without the first header line (from
// offset i on) that drop picks, or nil if there is none or it is one of the
// lines this parser reads (it must then refuse the request itself).
func dropFieldLine(data []byte, i int, drop func(line []byte) bool) []byte {
	for i < len(data) {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		l := bytes.TrimSuffix(data[i:i+j], []byte("\r"))
		if len(l) == 0 {
			break
		}
		if drop(l) {
			if n, _, _ := bytes.Cut(l, colon); isInterpreted(n) {
				return nil
			}
			return append(append([]byte(nil), data[:i]...), data[i+j+1:]...)
		}
		i += j + 1
	}
	return nil
}

func isInterpreted(name []byte) bool {
	for _, n := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Expect"} {
		if foldEq(name, n) {
			return true
		}
	}
	return false
}

func checkParsers(t *testing.T, data []byte) {
	ours, std := parseWithRTConn(data), parseWithNetHTTP(data)
	clean, fixed := data, []string(nil)
	if ours.ok() {
		// Undo what net/http refuses and this parser does not check; then
		// the two must agree on the request.
		for len(fixed) < 8 && std.headerErr != nil {
			c, what := leniency(clean, std.headerErr)
			if c == nil {
				break
			}
			clean, fixed = c, append(fixed, what)
			std = parseWithNetHTTP(clean)
		}
		std.consumed += len(data) - len(clean)
	}
	if ours.ok() != std.ok() {
		if reason := parserDisagreement(data, ours, std); reason != "" {
			return
		}
		t.Fatalf("%q: rtConn accepts=%v (%v, %v), net/http accepts=%v (%v, %v) (after undoing %q)", data,
			ours.ok(), ours.headerErr, ours.bodyErr, std.ok(), std.headerErr, std.bodyErr, fixed)
	}
	if !ours.ok() {
		return
	}
	for _, f := range fixed {
		switch f {
		case "method characters":
			std.method = ours.method
		case "request target syntax":
			std.path = ours.path
		}
	}
	if !strings.HasPrefix(std.req.RequestURI, "/") {
		// Another form of target (absolute, authority, "*", or stranger): the
		// path is compared for the origin form only, the one the routes use.
		std.path = ours.path
	}
	if ours.method != std.method || ours.path != std.path || ours.closeAfter != std.closeAfter ||
		!bytes.Equal(ours.body, std.body) || ours.consumed != std.consumed ||
		ours.errType != std.errType || ours.errBody != std.errBody {
		std.req = nil
		t.Fatalf("%q (after undoing %q):\nrtConn   %+v\nnet/http %+v", data, fixed, ours, std)
	}
}

func FuzzRequestParser(f *testing.F) {
	post := "POST /2018-06-01/runtime/invocation/id/response HTTP/1.1\r\nHost: x\r\n"
	for _, seed := range []string{
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a%20b?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET http://x/a/b HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /x HTTP/1.0\r\n\r\n",
		"GET /x HTTP/1.1\nHost: x\n\n",
		post + "Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
		post + "Content-Length: 5\r\n\r\nhel",
		post + "Content-Length: 05 \r\n\r\nhello",
		post + "Content-Length: 5\v\r\n\r\nhello",
		post + "Content-Length: +5\r\n\r\nhello",
		post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Other: y\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n0\r\nLambda-Runtime-Function-Error-Type: E\r\n" +
			"Lambda-Runtime-Function-Error-Body: e30=\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n0\r\nBad Name: x\r\n\r\n",
		post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		post + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /x HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"GET /x HTTP/2.0\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"\r\nGET /x HTTP/1.1\r\n\r\n",
		// Many one-byte chunks pass; extensions that dwarf the data do not.
		post + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1\r\nx\r\n", 5000) + "0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\nx\r\n", 100) + "0\r\n\r\n",
		// A chunk line up to 4096 bytes with its CRLF, as net/http's.
		post + "Transfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", 4092) + "\r\nx\r\n0\r\n\r\n",
		post + "Transfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", 4093) + "\r\nx\r\n0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(checkParsers)
}

// The two parsers' differences that matter most, spelled out.
func TestRequestParserRefusals(t *testing.T) {
	for _, req := range []string{
		"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /x HTTP/1.1\r\nContent-Length: 5\v\r\n\r\nhello",
	} {
		if p := parseWithRTConn([]byte(req)); p.headerErr == nil {
			t.Errorf("%q accepted", req)
		}
	}
	c := &rtConn{nc: discardConn{}, br: bufio.NewReader(strings.NewReader(
		"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))}
	if status, err := c.readRequest(); status != http.StatusBadRequest || err == nil {
		t.Errorf("Content-Length with Transfer-Encoding: %d %v", status, err)
	}
}
