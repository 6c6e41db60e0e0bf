package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A body's buffer follows what has arrived, not what was declared.
func TestBodyBufferFollowsArrival(t *testing.T) {
	const declared, sent = 6 << 20, 4 << 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	body, err := readBody(strings.NewReader(strings.Repeat("x", sent)), declared, declared)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF || body != nil {
		t.Fatalf("a body cut short: %d bytes, %v", len(body), err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("%d bytes allocated for %d bytes received of %d declared", n, sent, declared)
	}

	// Whole bodies, known length or not, and the limit.
	for _, c := range []struct {
		n, declared, limit int64
		err                error
	}{
		{0, 0, 10, nil}, {5, 5, 10, nil}, {10, 10, 10, nil}, {11, 11, 10, errBodyTooLarge},
		{100000, 100000, 1 << 20, nil}, {100000, -1, 1 << 20, nil}, {11, -1, 10, errBodyTooLarge}, {10, -1, 10, nil},
	} {
		want := strings.Repeat("b", int(c.n))
		got, err := readBody(strings.NewReader(want), c.declared, c.limit)
		if err != c.err || err == nil && string(got) != want {
			t.Errorf("%+v: %d bytes, %v", c, len(got), err)
		}
	}
}

// rawPost sends a request on a new connection and returns it, unread.
func rawConnect(t *testing.T, url string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func readReply(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestConnectionLimit(t *testing.T) {
	h := startBridge(t, "FNCTL_BRIDGE_MAX_CONNECTIONS=2")
	first, second := rawConnect(t, h.url), rawConnect(t, h.url)
	io.WriteString(first, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst")
	if resp, body := readReply(t, first); resp.StatusCode != 200 || body != "first" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}

	// Two connections are open (one idle after its request, one silent): a
	// third is answered 503 and closed, once its request is in (net/http's
	// client takes an answer before its request for a broken connection).
	third := rawConnect(t, h.url)
	third.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := third.Read(make([]byte, 1)); n != 0 || !isTimeout(err) {
		t.Fatalf("answered before the request: %d bytes, %v", n, err)
	}
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(third, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird")
	resp, body := readReply(t, third)
	if resp.StatusCode != 503 || !resp.Close || resp.Header.Get("Retry-After") != "1" ||
		body != `{"errorMessage":"fnctl-bridge is at its connection limit (2, FNCTL_BRIDGE_MAX_CONNECTIONS)","errorType":"ServiceUnavailable"}` {
		t.Fatalf("third: %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	if r := do(t, "POST", h.url, "by net/http"); r.status != 503 {
		t.Fatalf("a client that sends first: %d %q", r.status, r.body)
	}

	// A place frees when a connection closes.
	second.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, "POST", h.url, "later")
		if r.status == 200 && r.body == "later" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a close: %d %q", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueueLimit(t *testing.T) {
	h := startBridge(t, "FNCTL_BRIDGE_MAX_QUEUE=2")
	var wg sync.WaitGroup
	results := make(chan reply, 3)
	post := func(body string) {
		defer wg.Done()
		results <- do(t, "POST", h.url, body)
	}
	wg.Add(1)
	go post("cmd:sleep:800")
	h.waitHeld(1)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go post("queued")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.b.queued.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued", h.b.queued.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	r := h.post("one too many")
	if r.status != 503 || r.header.Get("Retry-After") != "1" ||
		r.body != `{"errorMessage":"too many requests are waiting for the function (2, FNCTL_BRIDGE_MAX_QUEUE)","errorType":"ServiceUnavailable"}` {
		t.Fatalf("over the queue limit: %d %q", r.status, r.body)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != 200 {
			t.Errorf("a request within the limits: %d %q", r.status, r.body)
		}
	}
	expect(t, h.post("after"), 200, "after")
}

func TestBodyDeadline(t *testing.T) {
	h := startBridge(t, "FNCTL_BRIDGE_BODY_TIMEOUT=0.3")
	c := rawConnect(t, h.url)
	start := time.Now()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some of it")
	resp, body := readReply(t, c)
	if d := time.Since(start); resp.StatusCode != 408 || !resp.Close || d < 300*time.Millisecond || d > 5*time.Second ||
		body != `{"errorMessage":"the request body did not arrive within 0.3 seconds (FNCTL_BRIDGE_BODY_TIMEOUT)","errorType":"RequestTimeout"}` {
		t.Fatalf("a stalled body: %d close=%v after %v: %q", resp.StatusCode, resp.Close, d, body)
	}

	// A body that arrives in time, slowly, on a kept-alive connection: the
	// deadline is lifted for the rest of the exchange and the next request.
	c = rawConnect(t, h.url)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nsl")
	time.Sleep(100 * time.Millisecond)
	io.WriteString(c, "ow")
	br := bufio.NewReader(c)
	for i, want := range []string{"slow", "cmd:sleep:500"} {
		if i == 1 {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\ncmd:sleep:500")
			want = "slept 500"
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
}
