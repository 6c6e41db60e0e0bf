package main

// Tests of the hand-written Runtime API server, speaking raw HTTP/1.x to an
// invoker that has no process (the test plays the runtime).

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

type rtHarness struct {
	t   *testing.T
	b   *bridge
	inv *invoker
}

func newRTHarness(t *testing.T, maxBytes int64) *rtHarness {
	t.Helper()
	cfg := &config{timeout: time.Minute, timeoutStr: "60.00", maxBytes: maxBytes,
		arn: "arn:aws:lambda:us-east-1:000000000000:function:f"}
	b := newBridge(cfg, io.Discard)
	inv, err := newInvoker(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := &generation{dead: make(chan struct{})}
	inv.mu.Lock()
	inv.gen = g
	inv.mu.Unlock()
	t.Cleanup(func() {
		inv.mu.Lock()
		g.exited = true
		inv.mu.Unlock()
		close(g.dead)
		inv.rt.Close()
	})
	return &rtHarness{t: t, b: b, inv: inv}
}

// enqueue offers an invocation to the invokers, as a public request does.
func (h *rtHarness) enqueue(event string) *invocation {
	iv := &invocation{id: newUUID(), event: []byte(event), clientGone: make(chan struct{}), done: make(chan result, 1)}
	go func() { h.b.queue <- iv }()
	return iv
}

func (h *rtHarness) result(iv *invocation) result {
	h.t.Helper()
	select {
	case r := <-iv.done:
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatalf("invocation %s not completed", iv.id)
		return result{}
	}
}

type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (h *rtHarness) dial() *rawConn {
	h.t.Helper()
	c, err := net.Dial("tcp", h.inv.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: h.t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response and its body.
func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

func (r *rawConn) expectClosed() {
	r.t.Helper()
	if n, err := r.br.ReadByte(); err == nil {
		r.t.Fatalf("connection still open (read %q)", n)
	}
}

const nextReq = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"

func respPath(id, action string) string {
	return "/2018-06-01/runtime/invocation/" + id + "/" + action
}

func TestRuntimeAPIKeepAliveAndBodies(t *testing.T) {
	h := newRTHarness(t, 1000)
	rc := h.dial()

	// Content-Length body.
	iv := h.enqueue(`{"n":1}`)
	rc.send(nextReq)
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || body != `{"n":1}` || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Lambda-Runtime-Aws-Request-Id") != iv.id ||
		resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn") != h.b.cfg.arn ||
		!traceRE.MatchString(resp.Header.Get("Lambda-Runtime-Trace-Id")) || resp.Close {
		t.Fatalf("next: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64); err != nil ||
		ms < time.Now().Add(50*time.Second).UnixMilli() {
		t.Errorf("deadline %q", resp.Header.Get("Lambda-Runtime-Deadline-Ms"))
	}
	rc.send("POST " + respPath(iv.id, "response") + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	resp, body = rc.read("POST")
	if resp.StatusCode != 202 || body != `{"status":"OK"}` {
		t.Fatalf("response: %d %q", resp.StatusCode, body)
	}
	if r := h.result(iv); r.kind != resOK || string(r.body) != "hello" {
		t.Fatalf("result %+v", r)
	}

	// Chunked body with an extension and a trailer, header names in odd case.
	iv = h.enqueue("two")
	rc.send(nextReq)
	if _, body = rc.read("GET"); body != "two" {
		t.Fatalf("second next: %q", body)
	}
	rc.send("POST " + respPath(iv.id, "response") + " HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n\r\n" +
		"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Other: y\r\n\r\n")
	if resp, body = rc.read("POST"); resp.StatusCode != 202 {
		t.Fatalf("chunked response: %d %q", resp.StatusCode, body)
	}
	if r := h.result(iv); r.kind != resOK || string(r.body) != "abc0123456789" {
		t.Fatalf("chunked result %q", r.body)
	}

	// Expect: 100-continue gets its interim answer before the body is sent.
	iv = h.enqueue("three")
	rc.send(nextReq)
	rc.read("GET")
	rc.send("POST " + respPath(iv.id, "error") + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" +
		"Lambda-Runtime-Function-Error-Type: Custom.Err\r\nContent-Length: 4\r\n\r\n")
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim answer %q %v", line, err)
	}
	rc.br.ReadString('\n')
	rc.send("oops")
	if resp, _ = rc.read("POST"); resp.StatusCode != 202 {
		t.Fatalf("error post: %d", resp.StatusCode)
	}
	if r := h.result(iv); r.kind != resFuncError || string(r.body) != `{"errorMessage":"oops","errorType":"Custom.Err"}` {
		t.Fatalf("error result %q", r.body)
	}

	// An oversized response: 413 to the runtime, 502 to the client, and
	// the connection is closed (the rest of the body is too big to skip).
	iv = h.enqueue("four")
	rc.send(nextReq)
	rc.read("GET")
	big := strings.Repeat("z", 300<<10)
	go io.WriteString(rc.c, "POST "+respPath(iv.id, "response")+" HTTP/1.1\r\nHost: x\r\nContent-Length: "+
		strconv.Itoa(len(big))+"\r\n\r\n"+big)
	resp, body = rc.read("POST")
	if resp.StatusCode != 413 || !strings.Contains(body, "RequestEntityTooLarge") || !resp.Close {
		t.Fatalf("oversized: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if r := h.result(iv); r.kind != resBridge || r.status != 502 || !strings.Contains(string(r.body), "Function.ResponseSizeTooLarge") {
		t.Fatalf("oversized result %+v", r)
	}
}

func TestRuntimeAPIErrorsAndFraming(t *testing.T) {
	h := newRTHarness(t, 1000)

	// Pipelined requests; a 404, a HEAD, an unknown id with a body to skip.
	rc := h.dial()
	rc.send("GET /2018-06-01/runtime/nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST " + respPath("not-held", "response") + " HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"POST " + respPath("not-held", "response") + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" +
		"PUT /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 404 || body != `{"errorMessage":"no such Runtime API endpoint: GET /2018-06-01/runtime/nope","errorType":"NotFound"}` {
		t.Fatalf("404: %d %q", resp.StatusCode, body)
	}
	if resp, body = rc.read("HEAD"); resp.StatusCode != 404 || body != "" || resp.ContentLength <= 0 {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	for i := 0; i < 2; i++ {
		if resp, body = rc.read("POST"); resp.StatusCode != 400 || !strings.Contains(body, "InvalidRequestID") || resp.Close {
			t.Fatalf("unknown id: %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ = rc.read("PUT"); resp.StatusCode != 404 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}

	// HTTP/1.0: closed after the answer unless keep-alive was asked for.
	rc = h.dial()
	rc.send("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ = rc.read("GET"); resp.StatusCode != 404 || resp.Close {
		t.Fatalf("1.0 keep-alive: %d close=%v", resp.StatusCode, resp.Close)
	}
	rc.send("GET /x HTTP/1.0\r\n\r\n")
	if resp, _ = rc.read("GET"); !resp.Close {
		t.Fatal("1.0 without keep-alive not closed")
	}
	rc.expectClosed()

	// Connection: close, absolute-form target.
	rc = h.dial()
	rc.send("GET http://x/2018-06-01/runtime/nope?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, body = rc.read("GET"); resp.StatusCode != 404 || !resp.Close || !strings.Contains(body, "GET /2018-06-01/runtime/nope\"") {
		t.Fatalf("absolute form: %d %q", resp.StatusCode, body)
	}
	rc.expectClosed()

	// Malformed requests: an error answer, then the connection closes.
	for req, status := range map[string]int{
		"GARBAGE\r\n\r\n":        400,
		"GET / HTTP/2.0\r\n\r\n": 505,
		"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n":          400,
		"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n":                         501,
		"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n": 400,
		"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n": 400,
		"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n":                      400,
		"GET /x HTTP/1.1\r\nBad Header: 1\r\n\r\n":                                    400,
		"GET /x HTTP/1.1\r\nX: " + strings.Repeat("a", rtMaxHeaderBytes) + "\r\n":     431,
	} {
		rc = h.dial()
		go io.WriteString(rc.c, req)
		if resp, _ = rc.read("GET"); resp.StatusCode != status || !resp.Close {
			t.Errorf("%.40q: %d, want %d", req, resp.StatusCode, status)
		}
		rc.expectClosed()
	}

	// A malformed chunked body is answered 400, and the connection closed.
	iv0 := h.enqueue("malformed")
	rc = h.dial()
	rc.send(nextReq)
	rc.read("GET")
	rc.send("POST " + respPath(iv0.id, "response") + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"1\nx\r\n0\r\n\r\n")
	if resp, body = rc.read("POST"); resp.StatusCode != 400 || !resp.Close || !strings.Contains(body, "malformed chunked") {
		t.Fatalf("malformed chunked body: %d %q", resp.StatusCode, body)
	}
	rc.expectClosed()
	rc = h.dial()
	rc.send("POST " + respPath(iv0.id, "response") + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
	if resp, _ = rc.read("POST"); resp.StatusCode != 202 {
		t.Fatalf("a good answer after a malformed one: %d", resp.StatusCode)
	}
	if r := h.result(iv0); string(r.body) != "ok" {
		t.Fatalf("result %q", r.body)
	}

	// A runtime that hangs up while polling does not swallow an invocation.
	first := h.dial()
	first.send(nextReq)
	time.Sleep(50 * time.Millisecond)
	first.c.Close()
	time.Sleep(50 * time.Millisecond)
	second := h.dial()
	second.send(nextReq)
	time.Sleep(50 * time.Millisecond)
	iv := h.enqueue("for the live one")
	if resp, body = second.read("GET"); body != "for the live one" || resp.Header.Get("Lambda-Runtime-Aws-Request-Id") != iv.id {
		t.Fatalf("after a hang-up: %q", body)
	}
}

// curl reuses one connection for a next and a chunked response post.
func TestRuntimeAPIWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	h := newRTHarness(t, 1<<20)
	iv := h.enqueue("from curl")
	api := "http://" + h.inv.addr
	out, err := exec.Command("curl", "-sS", "-w", " connects=%{num_connects}\n",
		api+"/2018-06-01/runtime/invocation/next",
		"--next", "-sS", "-w", " connects=%{num_connects}\n", "-H", "Transfer-Encoding: chunked",
		"--data-binary", strings.Repeat("c", 5000), api+respPath(iv.id, "response")).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	if want := "from curl connects=1\n{\"status\":\"OK\"} connects=0\n"; string(out) != want {
		t.Fatalf("curl said %q, want %q", out, want)
	}
	if r := h.result(iv); r.kind != resOK || string(r.body) != strings.Repeat("c", 5000) {
		t.Fatalf("result %d bytes", len(r.body))
	}
}

func TestBootstrapGOMAXPROCS(t *testing.T) {
	for _, c := range [][3]int{{2, 4, 1}, {8, 3, 3}, {8, 4, 2}, {1, 1, 1}, {16, 1, 16}} {
		if got := bootstrapProcs(c[0], c[1]); got != c[2] {
			t.Errorf("bootstrapProcs(%d cpus, %d invokers) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
	exe := []string{"BOOTSTRAP=" + testExe, "LAMBDA_TASK_ROOT=" + t.TempDir()}
	cfg, err := loadConfig(nil, append(exe, "INVOKER_COUNT=1024"))
	if err != nil || newEnvMap(cfg.baseEnv).get("GOMAXPROCS") != "1" {
		t.Errorf("default: %v %v", err, newEnvMap(cfg.baseEnv).get("GOMAXPROCS"))
	}
	cfg, err = loadConfig(nil, append(exe, "GOMAXPROCS=7"))
	if err != nil || newEnvMap(cfg.baseEnv).get("GOMAXPROCS") != "7" {
		t.Errorf("user setting: %v %v", err, newEnvMap(cfg.baseEnv).get("GOMAXPROCS"))
	}
}
