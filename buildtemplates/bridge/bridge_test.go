package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "fnctl-bridge-main" {
		os.Args = append(os.Args[:1], os.Args[2:]...)
		main()
		return
	}
	if os.Getenv("FNCTL_FAKE_BOOTSTRAP") == "1" {
		os.Exit(runFakeBootstrap())
	}
	os.Exit(m.Run())
}

var testExe = func() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}()

// syncBuf is a goroutine-safe buffer that can wait for content.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan struct{}
}

func newSyncBuf() *syncBuf { return &syncBuf{ch: make(chan struct{}, 1)} }

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the buffer matches re, returning the submatches.
func (s *syncBuf) waitFor(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		select {
		case <-s.ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %q; have:\n%s", re, s.String())
		}
	}
}

var readyRE = regexp.MustCompile(`fnctl-bridge: ready on (\S+) with (\d+) invokers\n`)

func baseEnv(t *testing.T, extra ...string) []string {
	env := append(os.Environ(),
		"FNCTL_FAKE_BOOTSTRAP=1",
		"BOOTSTRAP="+testExe,
		"PORT=0",
		"FNCTL_LISTEN_HOST=127.0.0.1",
		"LAMBDA_TASK_ROOT="+t.TempDir(),
		"INVOKER_COUNT=1",
	)
	return append(env, extra...)
}

// harness runs the bridge in-process.
type harness struct {
	t      *testing.T
	url    string
	sigs   chan os.Signal
	done   chan int
	stdout *syncBuf
	stderr *syncBuf
	b      *bridge
}

var hookMu sync.Mutex

func startBridge(t *testing.T, env ...string) *harness {
	t.Helper()
	h := &harness{t: t, sigs: make(chan os.Signal, 1), done: make(chan int, 1), stdout: newSyncBuf(), stderr: newSyncBuf()}
	environ := baseEnv(t, env...)
	got := make(chan *bridge, 1)
	hookMu.Lock()
	testHook = func(b *bridge) { got <- b }
	go func() { h.done <- run(nil, environ, h.stdout, h.stderr, h.sigs) }()
	select {
	case h.b = <-got:
	case code := <-h.done:
		hookMu.Unlock()
		t.Fatalf("bridge exited %d before starting: %s", code, h.stderr.String())
	}
	testHook = nil
	hookMu.Unlock()
	m := h.stdout.waitFor(t, readyRE, 30*time.Second)
	h.url = "http://" + m[1]
	t.Cleanup(func() { h.stop(0) })
	return h
}

func (h *harness) stop(want int) {
	if h.sigs == nil {
		return
	}
	h.sigs <- syscall.SIGTERM
	h.sigs = nil
	select {
	case code := <-h.done:
		if code != want {
			h.t.Errorf("bridge exit status %d, want %d; stderr:\n%s", code, want, h.stderr.String())
		}
	case <-time.After(40 * time.Second):
		h.t.Errorf("bridge did not stop; stderr:\n%s", h.stderr.String())
	}
}

// held reports how many invokers currently hold an invocation.
func (h *harness) held() int {
	n := 0
	for _, inv := range h.b.invokers {
		inv.mu.Lock()
		if inv.cur != nil {
			n++
		}
		inv.mu.Unlock()
	}
	return n
}

func (h *harness) waitHeld(n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.held() < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %d held invocations", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type reply struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{Timeout: 30 * time.Second}

func do(t *testing.T, method, url, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (h *harness) post(body string, hdr ...string) reply {
	h.t.Helper()
	return do(h.t, "POST", h.url+"/", body, hdr...)
}

func expect(t *testing.T, r reply, status int, body string) {
	t.Helper()
	if r.status != status || (body != "" && r.body != body) {
		t.Fatalf("got %d %q, want %d %q", r.status, r.body, status, body)
	}
}

type info struct {
	Pid     int               `json:"pid"`
	Headers map[string]string `json:"headers"`
	Env     map[string]string `json:"env"`
	Cwd     string            `json:"cwd"`
	Now     int64             `json:"now"`
}

func (h *harness) info(hdr ...string) info {
	h.t.Helper()
	r := h.post("cmd:info", hdr...)
	expect(h.t, r, 200, "")
	var in info
	if err := json.Unmarshal([]byte(r.body), &in); err != nil {
		h.t.Fatalf("bad info %q: %v", r.body, err)
	}
	return in
}

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	traceRE = regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`)
)

func TestRoundTripHeadersAndEnvironment(t *testing.T) {
	h := startBridge(t, "HANDLER=index.handler", "K_SERVICE=myfn", "K_REVISION=myfn-00001",
		"AWS_REGION=eu-west-1", "CUSTOM_VAR=kept", "FUNCTION_TIMEOUT=42.5")
	taskRoot := newEnvMap(baseEnvOf(h)).get("LAMBDA_TASK_ROOT")

	before := time.Now()
	in := h.info("X-Amzn-Trace-Id", "Root=1-5e1b4151-5ac6c58f5f0a4d7f8d9e0c1b;Parent=53995c3f42cd8ad8;Sampled=1",
		"Lambda-Runtime-Client-Context", `{"client":1}`, "Lambda-Runtime-Cognito-Identity", `{"id":"x"}`)
	hd := in.Headers
	if !uuidRE.MatchString(hd["Lambda-Runtime-Aws-Request-Id"]) {
		t.Errorf("request id %q is not a uuid v4", hd["Lambda-Runtime-Aws-Request-Id"])
	}
	dl, err := strconv.ParseInt(hd["Lambda-Runtime-Deadline-Ms"], 10, 64)
	if err != nil || dl < before.Add(42*time.Second).UnixMilli() || dl > time.Now().Add(43*time.Second).UnixMilli() {
		t.Errorf("deadline %q not ~42.5s ahead", hd["Lambda-Runtime-Deadline-Ms"])
	}
	checks := map[string]string{
		"Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:000000000000:function:myfn",
		"Lambda-Runtime-Trace-Id":             "Root=1-5e1b4151-5ac6c58f5f0a4d7f8d9e0c1b;Parent=53995c3f42cd8ad8;Sampled=1",
		"Lambda-Runtime-Client-Context":       `{"client":1}`,
		"Lambda-Runtime-Cognito-Identity":     `{"id":"x"}`,
		"Content-Type":                        "application/json",
	}
	for k, v := range checks {
		if hd[k] != v {
			t.Errorf("header %s = %q, want %q", k, hd[k], v)
		}
	}
	envChecks := map[string]string{
		"_HANDLER":                        "index.handler",
		"LAMBDA_TASK_ROOT":                taskRoot,
		"LAMBDA_RUNTIME_DIR":              "/var/runtime",
		"AWS_LAMBDA_FUNCTION_NAME":        "myfn",
		"AWS_LAMBDA_FUNCTION_VERSION":     "myfn-00001",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     "43",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/myfn",
		"AWS_EXECUTION_ENV":               "fnctl",
		"AWS_REGION":                      "eu-west-1",
		"AWS_DEFAULT_REGION":              "eu-west-1",
		"CUSTOM_VAR":                      "kept",
	}
	for k, v := range envChecks {
		if in.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, in.Env[k], v)
		}
	}
	if in.Cwd != taskRoot {
		t.Errorf("cwd %q, want %q", in.Cwd, taskRoot)
	}
	if !strings.Contains(in.Env["AWS_LAMBDA_LOG_STREAM_NAME"], "[myfn-00001]") {
		t.Errorf("log stream %q", in.Env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	api := in.Env["AWS_LAMBDA_RUNTIME_API"]
	if !strings.HasPrefix(api, "127.0.0.1:") || strings.HasSuffix(h.url, api) {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q", api)
	}

	// Without an incoming trace header, one is generated.
	in = h.info()
	if !traceRE.MatchString(in.Headers["Lambda-Runtime-Trace-Id"]) {
		t.Errorf("generated trace id %q", in.Headers["Lambda-Runtime-Trace-Id"])
	}
	if _, ok := in.Headers["Lambda-Runtime-Client-Context"]; ok {
		t.Errorf("client context passed without an incoming header")
	}

	// Passthrough bodies and content types.
	r := h.post("hello")
	expect(t, r, 200, "hello")
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("text content type %q", ct)
	}
	r = h.post(`{"a":[1,2]}`)
	expect(t, r, 200, `{"a":[1,2]}`)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("json content type %q", ct)
	}
	expect(t, do(t, "GET", h.url+"/any/path?x=1", ""), 200, "")
	expect(t, h.post("cmd:upper:shout"), 200, "SHOUT")

	// A response for an id this runtime does not hold is rejected.
	r = h.post("cmd:badid")
	if !strings.HasPrefix(r.body, "400 ") || !strings.Contains(r.body, `"errorType":"InvalidRequestID"`) {
		t.Errorf("bad id answer %q", r.body)
	}

	// Unknown Runtime API paths are 404 JSON.
	r = do(t, "GET", "http://"+api+"/2018-06-01/runtime/nope", "")
	if r.status != 404 || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("unknown runtime path: %d %s", r.status, r.body)
	}
	r = do(t, "POST", "http://"+api+"/2018-06-01/runtime/invocation/x/response", "x")
	if r.status != 400 || !strings.Contains(r.body, "InvalidRequestID") {
		t.Errorf("unknown id: %d %s", r.status, r.body)
	}
}

func baseEnvOf(h *harness) []string { return h.b.cfg.baseEnv }

func TestFunctionError(t *testing.T) {
	h := startBridge(t)
	r := h.post("cmd:error")
	expect(t, r, 500, `{"errorMessage":"boom","errorType":"FakeError","stackTrace":["a.go:1"]}`)
	if r.header.Get("X-Amz-Function-Error") != "Unhandled" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("error headers %v", r.header)
	}
	r = h.post("cmd:errortext")
	expect(t, r, 500, `{"errorMessage":"bad thing","errorType":"Custom.Type"}`)
	r = h.post("cmd:trailererror")
	expect(t, r, 500, `{"errorMessage":"stream broke","errorType":"StreamError"}`)
	h.stderr.waitFor(t, regexp.MustCompile(`fnctl-bridge: invocation [0-9a-f-]+ failed: FakeError: boom\n`), 5*time.Second)
	expect(t, h.post("after"), 200, "after")
}

func TestConcurrentInvokers(t *testing.T) {
	h := startBridge(t, "INVOKER_COUNT=4")
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expect(t, h.post("cmd:sleep:300"), 200, "slept 300")
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 1100*time.Millisecond {
		t.Fatalf("4 concurrent 300ms invocations took %v", d)
	}
}

func TestSizeLimits(t *testing.T) {
	h := startBridge(t, "MAX_REQUEST_BYTES=1000")
	r := h.post(strings.Repeat("x", 1001))
	if r.status != 413 || !strings.Contains(r.body, "1000") || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("oversized body: %d %q", r.status, r.body)
	}
	// Chunked (unknown length) bodies are capped too.
	req, _ := http.NewRequest("POST", h.url+"/", io.MultiReader(strings.NewReader(strings.Repeat("y", 1500)), strings.NewReader("z")))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("oversized chunked body: %d", resp.StatusCode)
	}
	body := strings.Repeat("k", 1000)
	expect(t, h.post(body), 200, body)

	// A response over the limit: 413 to the runtime, 502 to the client.
	r = h.post("cmd:big:1001")
	if r.status != 502 || !strings.Contains(r.body, "Function.ResponseSizeTooLarge") {
		t.Fatalf("oversized response: %d %q", r.status, r.body)
	}
	expect(t, h.post("still fine"), 200, "still fine")
}

// A function that streams its response in many small writes (a chunk per
// byte) gets all of it through: chunk lines are not counted as header bytes.
func TestStreamedResponseOneBytePerWrite(t *testing.T) {
	h := startBridge(t)
	const n = 300000
	r := h.post("cmd:pipe:" + strconv.Itoa(n))
	want := make([]byte, n)
	for i := range want {
		want[i] = pipeByte(i)
	}
	if r.status != 200 || r.body != string(want) {
		t.Fatalf("got %d, %d bytes (%.60q), want 200 and the %d bytes streamed", r.status, len(r.body), r.body, n)
	}
	expect(t, h.post("after"), 200, "after")
}

func TestTimeoutRestartsInvoker(t *testing.T) {
	h := startBridge(t, "FUNCTION_TIMEOUT=0.5")
	pid1 := h.info().Pid
	start := time.Now()
	r := h.post("cmd:sleep:20000")
	d := time.Since(start)
	expect(t, r, 504, `{"errorMessage":"Task timed out after 0.50 seconds","errorType":"TimeoutError"}`)
	if d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("timeout answered after %v", d)
	}
	pid2 := h.info().Pid
	if pid1 == pid2 {
		t.Errorf("invoker was not restarted (pid %d)", pid1)
	}
	expect(t, h.post("ok"), 200, "ok")
	if err := syscall.Kill(pid1, 0); err == nil {
		t.Errorf("timed-out process %d still exists", pid1)
	}
}

func TestDyingBootstrap(t *testing.T) {
	h := startBridge(t, "INVOKER_COUNT=2")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		expect(t, h.post("cmd:sleep:500"), 200, "slept 500")
	}()
	h.waitHeld(1)
	expect(t, h.post("cmd:die:3"), 502, `{"errorMessage":"Runtime exited with error: exit status 3","errorType":"Runtime.ExitError"}`)
	wg.Wait()
	for i := 0; i < 6; i++ {
		expect(t, h.post(fmt.Sprint("later ", i)), 200, fmt.Sprint("later ", i))
	}
	// Idle exits are restarted too, as is a runtime that skips a response.
	expect(t, h.post("cmd:exitafter"), 200, "bye")
	for i := 0; i < 4; i++ {
		expect(t, h.post("again"), 200, "again")
	}
	r := h.post("cmd:noresponse")
	if r.status != 502 || !strings.Contains(r.body, "Runtime.NoResponse") {
		t.Errorf("no response: %d %q", r.status, r.body)
	}
	h.stderr.waitFor(t, regexp.MustCompile(`invoker \d: runtime exited \(exit status 3\); restarting`), 5*time.Second)
}

func TestQueuedClientDisconnect(t *testing.T) {
	h := startBridge(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		expect(t, h.post("cmd:sleep:600"), 200, "slept 600")
	}()
	h.waitHeld(1)

	// B queues behind A, then gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/", strings.NewReader("queued-and-gone"))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("queued request unexpectedly answered")
	}
	cancel()
	wg.Wait()
	r := h.post("cmd:seen")
	expect(t, r, 200, `["cmd:sleep:600","cmd:seen"]`)

	// A client that leaves while being served: the response is discarded.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	req, _ = http.NewRequestWithContext(ctx, "POST", h.url+"/", strings.NewReader("cmd:sleep:300"))
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request unexpectedly answered")
	}
	cancel()
	expect(t, h.post("next one"), 200, "next one")
}

func TestAPIGatewayEvent(t *testing.T) {
	h := startBridge(t, "EVENT=API_GATEWAY")
	r := do(t, "GET", h.url+"/foo/bar?a=1&a=2&b=x%20y", "", "X-Test", "v1", "X-Test", "v2", "User-Agent", "tester/1")
	expect(t, r, 200, "")
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("default content type %q", r.header.Get("Content-Type"))
	}
	var ev map[string]interface{}
	if err := json.Unmarshal([]byte(r.body), &ev); err != nil {
		t.Fatalf("event %q: %v", r.body, err)
	}
	js := func(v interface{}) string { b, _ := json.Marshal(v); return string(b) }
	want := map[string]string{
		"resource":                        `"/{proxy+}"`,
		"path":                            `"/foo/bar"`,
		"httpMethod":                      `"GET"`,
		"queryStringParameters":           `{"a":"2","b":"x y"}`,
		"multiValueQueryStringParameters": `{"a":["1","2"],"b":["x y"]}`,
		"pathParameters":                  `{"proxy":"foo/bar"}`,
		"stageVariables":                  `null`,
		"body":                            `null`,
		"isBase64Encoded":                 `false`,
	}
	for k, v := range want {
		if got := js(ev[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	hdrs := ev["headers"].(map[string]interface{})
	mv := ev["multiValueHeaders"].(map[string]interface{})
	if hdrs["X-Test"] != "v2" || js(mv["X-Test"]) != `["v1","v2"]` || hdrs["Host"] != strings.TrimPrefix(h.url, "http://") {
		t.Errorf("headers %v / %v", hdrs, mv)
	}
	rc := ev["requestContext"].(map[string]interface{})
	id := rc["identity"].(map[string]interface{})
	if rc["accountId"] != "000000000000" || rc["resourcePath"] != "/{proxy+}" || rc["httpMethod"] != "GET" ||
		rc["path"] != "/foo/bar" || rc["stage"] != "$default" || rc["protocol"] != "HTTP/1.1" ||
		rc["domainName"] != strings.TrimPrefix(h.url, "http://") || !uuidRE.MatchString(fmt.Sprint(rc["requestId"])) ||
		id["sourceIp"] != "127.0.0.1" || id["userAgent"] != "tester/1" {
		t.Errorf("requestContext %s", js(rc))
	}
	if ms, _ := rc["requestTimeEpoch"].(float64); ms < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Errorf("requestTimeEpoch %v", rc["requestTimeEpoch"])
	}

	// Root path, no query: nulls.
	r = do(t, "GET", h.url+"/", "")
	json.Unmarshal([]byte(r.body), &ev)
	if ev["pathParameters"] != nil || ev["queryStringParameters"] != nil || ev["multiValueQueryStringParameters"] != nil {
		t.Errorf("root event %s", r.body)
	}

	// Binary bodies are base64 encoded; text ones are not.
	bin := string([]byte{0xff, 0x00, 0x80, 'a'})
	r = do(t, "POST", h.url+"/upload", bin)
	json.Unmarshal([]byte(r.body), &ev)
	if ev["isBase64Encoded"] != true || ev["body"] != base64.StdEncoding.EncodeToString([]byte(bin)) {
		t.Errorf("binary event body %v %v", ev["isBase64Encoded"], ev["body"])
	}
	r = do(t, "POST", h.url+"/text", "héllo")
	json.Unmarshal([]byte(r.body), &ev)
	if ev["isBase64Encoded"] != false || ev["body"] != "héllo" {
		t.Errorf("text event body %v %v", ev["isBase64Encoded"], ev["body"])
	}
}

func TestAPIGatewayResponseMapping(t *testing.T) {
	h := startBridge(t, "EVENT=API_GATEWAY")
	r := h.post(`cmd:respond:{"statusCode":201,"headers":{"X-A":"b","X-N":5},"multiValueHeaders":{"X-C":["1","2"]},"body":"aGk=","isBase64Encoded":true}`)
	expect(t, r, 201, "hi")
	if r.header.Get("X-A") != "b" || r.header.Get("X-N") != "5" || strings.Join(r.header.Values("X-C"), ",") != "1,2" ||
		r.header.Get("Content-Type") != "application/json" {
		t.Errorf("mapped headers %v", r.header)
	}
	r = h.post(`cmd:respond:{"statusCode":404,"headers":{"content-type":"text/html"},"body":"<p>nope</p>"}`)
	expect(t, r, 404, "<p>nope</p>")
	if r.header.Get("Content-Type") != "text/html" {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
	r = h.post(`cmd:respond:{"statusCode":204}`)
	expect(t, r, 204, "")
	for _, bad := range []string{`not json`, `{"body":"x"}`, `{"statusCode":"200"}`, `[1]`, `{"statusCode":200,"body":{"a":1}}`} {
		r = h.post("cmd:respond:" + bad)
		expect(t, r, 502, `{"message":"Internal server error"}`)
	}
	h.stderr.waitFor(t, regexp.MustCompile(`malformed Lambda proxy response`), 5*time.Second)
	// Function errors still surface as 500 with the Lambda error JSON.
	expect(t, h.post("cmd:error"), 500, `{"errorMessage":"boom","errorType":"FakeError","stackTrace":["a.go:1"]}`)
}

func TestMisconfiguration(t *testing.T) {
	cases := map[string][]string{
		"invalid INVOKER_COUNT":                {"INVOKER_COUNT=abc"},
		"invalid PORT":                         {"PORT=99999"},
		"invalid FUNCTION_TIMEOUT":             {"FUNCTION_TIMEOUT=-1"},
		"invalid EVENT":                        {"EVENT=SQS"},
		"no bootstrap found":                   {"BOOTSTRAP=/nonexistent/bootstrap"},
		"invalid FNCTL_BRIDGE_MAX_CONNECTIONS": {"FNCTL_BRIDGE_MAX_CONNECTIONS=0"},
		"invalid FNCTL_BRIDGE_MAX_QUEUE":       {"FNCTL_BRIDGE_MAX_QUEUE=many"},
		"invalid FNCTL_BRIDGE_BODY_TIMEOUT":    {"FNCTL_BRIDGE_BODY_TIMEOUT=0"},
	}
	for want, env := range cases {
		var out, errb bytes.Buffer
		code := run(nil, baseEnv(t, env...), &out, &errb, nil)
		if code != 2 || !strings.HasPrefix(errb.String(), "fnctl-bridge: "+want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", env, code, errb.String())
		}
	}
	// Without BOOTSTRAP: $LAMBDA_TASK_ROOT/bootstrap, then /var/runtime/bootstrap.
	var out, errb bytes.Buffer
	env := []string{"LAMBDA_TASK_ROOT=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	if code := run(nil, env, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "/var/runtime/bootstrap") {
		t.Errorf("default bootstrap: %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"-version"}, nil, &out, &errb, nil); code != 0 || !strings.HasPrefix(out.String(), "fnctl-bridge ") {
		t.Errorf("-version: %d %q", code, out.String())
	}
}

func TestBootstrapResolution(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(testExe, dir+"/bootstrap"); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(nil, []string{"LAMBDA_TASK_ROOT=" + dir})
	if err != nil || c.bootstrap[0] != dir+"/bootstrap" {
		t.Fatalf("task root bootstrap: %v %v", c, err)
	}
	c, err = loadConfig([]string{testExe, "arg1"}, []string{"BOOTSTRAP=/nonexistent"})
	if err != nil || c.path != testExe || strings.Join(c.bootstrap, " ") != testExe+" arg1" {
		t.Fatalf("argv bootstrap: %v %v", c, err)
	}
	// argv wins over BOOTSTRAP, end to end.
	h := startBridgeArgs(t, []string{testExe}, "BOOTSTRAP=/nonexistent")
	expect(t, h.post("via argv"), 200, "via argv")
}

func startBridgeArgs(t *testing.T, args []string, env ...string) *harness {
	h := &harness{t: t, sigs: make(chan os.Signal, 1), done: make(chan int, 1), stdout: newSyncBuf(), stderr: newSyncBuf()}
	environ := baseEnv(t, env...)
	go func() { h.done <- run(args, environ, h.stdout, h.stderr, h.sigs) }()
	m := h.stdout.waitFor(t, readyRE, 30*time.Second)
	h.url = "http://" + m[1]
	t.Cleanup(func() { h.stop(0) })
	return h
}

// --- tests of the real binary (re-executing the test binary as main) -------

type subproc struct {
	cmd    *exec.Cmd
	stdout *syncBuf
	stderr *syncBuf
	done   chan struct{}
	err    error
}

func startSubprocess(t *testing.T, env ...string) *subproc {
	t.Helper()
	p := &subproc{stdout: newSyncBuf(), stderr: newSyncBuf(), done: make(chan struct{})}
	p.cmd = exec.Command(testExe, "fnctl-bridge-main")
	p.cmd.Env = baseEnv(t, env...)
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *subproc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("bridge did not exit; stderr:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func TestInitFailureExits(t *testing.T) {
	cases := map[string]string{
		"initerror":      "fnctl-bridge: runtime failed to start: Runtime.FakeInitError: boom at init\n",
		"exitbeforenext": "fnctl-bridge: runtime failed to start: Runtime.ExitError: exit status 3\n",
	}
	for mode, want := range cases {
		p := startSubprocess(t, "FNCTL_FAKE_MODE="+mode, "INVOKER_COUNT=2")
		if code := p.wait(t); code != 1 {
			t.Errorf("%s: exit %d, want 1", mode, code)
		}
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("%s: stderr %q, want %q", mode, p.stderr.String(), want)
		}
		if strings.Contains(p.stdout.String(), "fnctl-bridge: ready") {
			t.Errorf("%s: ready printed", mode)
		}
	}
}

func TestInitFailureOnRestartExits(t *testing.T) {
	p := startSubprocess(t, "FNCTL_FAKE_MODE=failonrestart")
	url := "http://" + p.stdout.waitFor(t, readyRE, 30*time.Second)[1] + "/"
	expect(t, do(t, "POST", url, "cmd:die:3"), 502, "")
	if code := p.wait(t); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "fnctl-bridge: runtime failed to start: Runtime.ExitError: exit status 5\n"; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr %q, want %q", p.stderr.String(), want)
	}
}

func TestReadinessAfterTheFirstInvokerPolled(t *testing.T) {
	start := time.Now()
	p := startSubprocess(t, "FNCTL_FAKE_MODE=slowinit:300", "INVOKER_COUNT=3")
	m := p.stdout.waitFor(t, readyRE, 30*time.Second)
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("ready after %v, before any bootstrap polled", time.Since(start))
	}
	out := p.stdout.String()
	before := out[:strings.Index(out, "fnctl-bridge: ready")]
	if n := strings.Count(before, "fake-polling\n"); n < 1 {
		t.Errorf("no invoker had polled before ready:\n%s", out)
	}
	if strings.Count(out, "fnctl-bridge: ready") != 1 || m[2] != "3" {
		t.Errorf("ready line: %q", out)
	}
	// All three serve once started: three slow requests at once finish together.
	results := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() { results <- do(t, "POST", "http://"+m[1]+"/", "hi").status }()
	}
	for i := 0; i < 3; i++ {
		if code := <-results; code != 200 {
			t.Errorf("status %d", code)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

func TestSigtermDrains(t *testing.T) {
	p := startSubprocess(t, "INVOKER_COUNT=1")
	url := "http://" + p.stdout.waitFor(t, readyRE, 30*time.Second)[1] + "/"
	results := make(chan reply, 2)
	go func() { results <- do(t, "POST", url, "cmd:sleep:1500") }()
	p.stdout.waitFor(t, regexp.MustCompile(`fake-got cmd:sleep:1500\n`), 10*time.Second)
	go func() { results <- do(t, "POST", url, "cmd:upper:queued") }()
	time.Sleep(150 * time.Millisecond) // let the second request reach the queue
	p.cmd.Process.Signal(syscall.SIGTERM)

	// New connections are refused promptly while the old ones drain.
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := map[string]int{}
	for i := 0; i < 2; i++ {
		r := <-results
		got[r.body] = r.status
	}
	if got["slept 1500"] != 200 || got["QUEUED"] != 200 {
		t.Errorf("drained results %v", got)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr %s", code, p.stderr.String())
	}
}

// TestReaperMode exercises the PID-1 style child reaping (wait4(-1)).
func TestReaperMode(t *testing.T) {
	p := startSubprocess(t, "FNCTL_BRIDGE_REAP=1", "INVOKER_COUNT=2", "FUNCTION_TIMEOUT=0.5")
	url := "http://" + p.stdout.waitFor(t, readyRE, 30*time.Second)[1] + "/"
	expect(t, do(t, "POST", url, "cmd:die:4"), 502, `{"errorMessage":"Runtime exited with error: exit status 4","errorType":"Runtime.ExitError"}`)
	expect(t, do(t, "POST", url, "cmd:sleep:5000"), 504, "")
	for i := 0; i < 4; i++ {
		expect(t, do(t, "POST", url, "fine"), 200, "fine")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}
