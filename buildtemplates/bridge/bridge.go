package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result kinds delivered to a waiting HTTP client.
const (
	resOK        = iota // runtime posted a response
	resFuncError        // runtime posted an invocation error
	resBridge           // the bridge itself answers (timeout, exit, size...)
)

type result struct {
	kind   int
	status int           // for resBridge
	body   []byte        // response / error payload
	buf    *bytes.Buffer // pooled buffer backing body, if any
}

// invocation is one HTTP request on its way through an invoker.
type invocation struct {
	id            string
	event         []byte
	clientGone    <-chan struct{}
	traceID       string
	clientContext string
	cognito       string
	deadline      time.Time // set when handed to an invoker (under its lock)

	state int32       // 0 pending, 1 completed
	done  chan result // capacity 1
}

// complete delivers res unless the invocation was already completed.
func (iv *invocation) complete(res result) bool {
	if !atomic.CompareAndSwapInt32(&iv.state, 0, 1) {
		putBuf(res.buf)
		return false
	}
	iv.done <- res
	return true
}

func (iv *invocation) gone() bool {
	select {
	case <-iv.clientGone:
		return true
	default:
		return false
	}
}

type bridge struct {
	cfg      *config
	queue    chan *invocation // unbuffered: blocked senders form the FIFO queue
	invokers []*invoker
	stderr   io.Writer
	logMu    sync.Mutex

	fatalOnce sync.Once
	fatalCh   chan error    // first fatal (init) failure
	stopCh    chan struct{} // closed when bootstraps are being stopped
	stopping  int32
	abort     chan struct{} // closed when the shutdown drain deadline passes
	abortOnce sync.Once

	requests atomic.Uint64 // public requests seen, for idle detection
	queued   atomic.Int64  // public requests waiting for an invoker
}

func newBridge(cfg *config, stderr io.Writer) *bridge {
	return &bridge{
		cfg:     cfg,
		queue:   make(chan *invocation),
		stderr:  stderr,
		fatalCh: make(chan error, 1),
		stopCh:  make(chan struct{}),
		abort:   make(chan struct{}),
	}
}

func (b *bridge) logf(format string, args ...interface{}) {
	line := fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", "\\n")
	b.logMu.Lock()
	io.WriteString(b.stderr, "fnctl-bridge: "+line+"\n")
	b.logMu.Unlock()
}

// fatal records a runtime start-up failure; run() exits 1 with it.
func (b *bridge) fatal(errType, msg string) {
	b.fatalOnce.Do(func() {
		b.fatalCh <- fmt.Errorf("runtime failed to start: %s: %s", errType, msg)
	})
}

func (b *bridge) isStopping() bool { return atomic.LoadInt32(&b.stopping) != 0 }

// requeue puts an invocation that never reached a runtime back in the queue.
func (b *bridge) requeue(iv *invocation) {
	go func() {
		select {
		case b.queue <- iv:
		case <-iv.clientGone:
		case <-b.abort:
			iv.complete(shuttingDownResult())
		}
	}()
}

// Buffers for runtime responses; the HTTP client handler returns them.
var bufPool = sync.Pool{New: func() interface{} { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= 1<<20 {
		buf.Reset()
		bufPool.Put(buf)
	}
}

// --- JSON helpers -----------------------------------------------------------

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func lambdaErrorJSON(errType, msg string) []byte {
	return []byte(`{"errorMessage":` + jsonString(msg) + `,"errorType":` + jsonString(errType) + `}`)
}

func bridgeError(status int, errType, msg string) result {
	return result{kind: resBridge, status: status, body: lambdaErrorJSON(errType, msg)}
}

func shuttingDownResult() result {
	return bridgeError(http.StatusServiceUnavailable, "ServiceUnavailable", "fnctl-bridge is shutting down")
}

var (
	hdrContentType   = "Content-Type"
	hdrContentLength = "Content-Length"
	ctJSON           = []string{"application/json"}
	ctText           = []string{"text/plain; charset=utf-8"}
	funcErrUnhandled = []string{"Unhandled"}
)

func writeBody(w http.ResponseWriter, status int, ct []string, body []byte) {
	h := w.Header()
	h[hdrContentType] = ct
	h[hdrContentLength] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) { writeBody(w, status, ctJSON, body) }

// --- public HTTP handler ----------------------------------------------------

func (b *bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	if b.queued.Load() >= b.cfg.maxQueue {
		b.writeQueueFull(w) // before reading a body that could only wait
		return
	}
	body, err := b.readBody(r)
	switch {
	case err == errBodyTooLarge:
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestEntityTooLarge, []byte(fmt.Sprintf(
			`{"errorMessage":"Request payload size exceeded the limit of %d bytes (MAX_REQUEST_BYTES)","errorType":"RequestTooLarge","limit":%d}`,
			b.cfg.maxBytes, b.cfg.maxBytes)))
		return
	case isTimeout(err):
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestTimeout, lambdaErrorJSON("RequestTimeout",
			"the request body did not arrive within "+b.cfg.bodyTimeoutStr+" seconds (FNCTL_BRIDGE_BODY_TIMEOUT)"))
		return
	case err != nil:
		return // the client went away mid-body
	}

	ctx := r.Context()
	iv := &invocation{
		id:         newUUID(),
		clientGone: ctx.Done(),
		done:       make(chan result, 1),
	}
	h := r.Header
	if v := h["X-Amzn-Trace-Id"]; len(v) > 0 {
		iv.traceID = v[0]
	}
	if v := h["Lambda-Runtime-Client-Context"]; len(v) > 0 {
		iv.clientContext = v[0]
	}
	if v := h["Lambda-Runtime-Cognito-Identity"]; len(v) > 0 {
		iv.cognito = v[0]
	}
	if b.cfg.apiGateway {
		iv.event = buildAPIGatewayEvent(r, body)
	} else {
		iv.event = body
	}

	if b.queued.Add(1) > b.cfg.maxQueue {
		b.queued.Add(-1)
		b.writeQueueFull(w)
		return
	}
	select {
	case b.queue <- iv:
		b.queued.Add(-1)
	case <-iv.clientGone:
		b.queued.Add(-1)
		return // dropped from the queue
	case <-b.abort:
		b.queued.Add(-1)
		b.writeResult(w, shuttingDownResult())
		return
	}
	var res result
	select {
	case res = <-iv.done:
	case <-iv.clientGone:
		return // the response, when it comes, is discarded
	case <-b.abort:
		res = shuttingDownResult()
		if !iv.complete(res) {
			res = <-iv.done
		}
	}
	b.writeResult(w, res)
}

func (b *bridge) writeResult(w http.ResponseWriter, res result) {
	switch res.kind {
	case resOK:
		if b.cfg.apiGateway {
			b.writeAPIGatewayResponse(w, res.body)
		} else {
			ct := ctText
			if json.Valid(res.body) {
				ct = ctJSON
			}
			writeBody(w, http.StatusOK, ct, res.body)
		}
	case resFuncError:
		w.Header()["X-Amz-Function-Error"] = funcErrUnhandled
		writeJSON(w, http.StatusInternalServerError, res.body)
	default:
		writeJSON(w, res.status, res.body)
	}
	putBuf(res.buf)
}

// readBody reads the request body, up to MAX_REQUEST_BYTES and within the
// body deadline.
func (b *bridge) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength == 0 || r.ContentLength > b.cfg.maxBytes {
		return readBody(r.Body, r.ContentLength, b.cfg.maxBytes)
	}
	// A deadline that passes just as the body ends can still cancel the
	// request (net/http's read after a body's end sees it): a window of
	// microseconds after FNCTL_BRIDGE_BODY_TIMEOUT, where the request was
	// late anyway.
	lift := bodyDeadline(r, b.cfg.bodyTimeout)
	defer lift()
	return readBody(r.Body, r.ContentLength, b.cfg.maxBytes)
}

func (b *bridge) writeQueueFull(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, lambdaErrorJSON("ServiceUnavailable",
		"too many requests are waiting for the function ("+strconv.FormatInt(b.cfg.maxQueue, 10)+", FNCTL_BRIDGE_MAX_QUEUE)"))
}

// setOnce sets *p to 1 and reports whether it was 0.
func setOnce(p *int32) bool { return atomic.CompareAndSwapInt32(p, 0, 1) }
