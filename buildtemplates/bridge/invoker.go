package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// generation is one run of a bootstrap process.
type generation struct {
	pid      int
	started  time.Time
	polled   bool // has called invocation/next (under invoker.mu)
	exited   bool // under invoker.mu
	timedOut bool // killed by the bridge after a timeout (under invoker.mu)
	dead     chan struct{}
}

// invoker owns one bootstrap process and the Runtime API listener serving it,
// so the bridge always knows which process holds which request.
type invoker struct {
	b    *bridge
	idx  int
	ln   net.Listener
	rt   *rtServer
	addr string
	env  []string

	mu      sync.Mutex
	gen     *generation
	cur     *invocation // request held by the runtime, if any
	timer   *time.Timer // fires at cur.deadline
	stopped bool        // no more processes may be started

	ready     chan struct{} // closed on the first invocation/next ever
	readyOnce sync.Once
	exited    chan struct{} // closed when the supervision loop has ended
}

func newInvoker(b *bridge, idx int) (*invoker, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	inv := &invoker{
		b:      b,
		idx:    idx,
		ln:     ln,
		addr:   ln.Addr().String(),
		ready:  make(chan struct{}),
		exited: make(chan struct{}),
	}
	inv.env = append(append(make([]string, 0, len(b.cfg.baseEnv)+1), b.cfg.baseEnv...),
		"AWS_LAMBDA_RUNTIME_API="+inv.addr)
	inv.timer = time.AfterFunc(time.Hour, inv.onTimer)
	inv.timer.Stop()
	inv.rt = newRTServer(inv, ln)
	go inv.rt.serve()
	return inv, nil
}

// spawn starts a new bootstrap process, unless the invoker is stopped.
func (inv *invoker) spawn() (*generation, <-chan syscall.WaitStatus, error) {
	cfg := inv.b.cfg
	cmd := &exec.Cmd{
		Path:        cfg.path,
		Args:        cfg.bootstrap,
		Env:         inv.env,
		Dir:         cfg.dir,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	g := &generation{started: time.Now(), dead: make(chan struct{})}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.stopped {
		return nil, nil, nil
	}
	inv.gen = g
	wait, err := startProcess(cmd)
	if err != nil {
		g.exited = true
		close(g.dead)
		return nil, nil, err
	}
	g.pid = cmd.Process.Pid
	return g, wait, nil
}

// supervise runs the bootstrap, restarting it whenever it exits.
func (inv *invoker) supervise() {
	b := inv.b
	defer close(inv.exited)
	var backoff time.Duration
	for {
		g, wait, err := inv.spawn()
		if err != nil {
			b.fatal("Runtime.InvalidEntrypoint", err.Error())
			return
		}
		if g == nil {
			return // stopped
		}
		ws := <-wait
		killGroup(g.pid, syscall.SIGKILL) // leftovers such as a bash bootstrap's curl

		inv.mu.Lock()
		g.exited = true
		held := inv.cur
		inv.cur = nil
		inv.timer.Stop()
		polled, timedOut := g.polled, g.timedOut
		inv.mu.Unlock()
		close(g.dead)

		status := describeStatus(ws)
		if held != nil {
			held.complete(bridgeError(http.StatusBadGateway, "Runtime.ExitError", "Runtime exited with error: "+status))
		}
		if b.isStopping() {
			return
		}
		if !polled {
			b.fatal("Runtime.ExitError", status)
			return
		}
		if timedOut {
			b.logf("invoker %d: runtime killed after the %ss timeout; restarting", inv.idx, b.cfg.timeoutStr)
		} else {
			b.logf("invoker %d: runtime exited (%s); restarting", inv.idx, status)
			if time.Since(g.started) > 5*time.Second {
				backoff = 0
			}
			if backoff > 0 {
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-b.stopCh:
					t.Stop()
					return
				}
			}
			switch {
			case backoff == 0:
				backoff = 50 * time.Millisecond
			case backoff < time.Second:
				backoff *= 2
				if backoff > time.Second {
					backoff = time.Second
				}
			}
		}
	}
}

// stop prevents further restarts and sends sig to the running process group.
func (inv *invoker) stop(sig syscall.Signal) {
	inv.mu.Lock()
	inv.stopped = true
	pid := 0
	if g := inv.gen; g != nil && !g.exited {
		pid = g.pid
	}
	inv.mu.Unlock()
	killGroup(pid, sig)
}

// onTimer fires when the held invocation may have reached its deadline.
func (inv *invoker) onTimer() {
	inv.mu.Lock()
	iv := inv.cur
	if iv == nil || time.Now().Before(iv.deadline) {
		inv.mu.Unlock()
		return
	}
	inv.cur = nil
	g := inv.gen
	g.timedOut = true
	pid, running := g.pid, !g.exited
	inv.mu.Unlock()
	iv.complete(result{kind: resBridge, status: http.StatusGatewayTimeout,
		body: []byte(`{"errorMessage":"Task timed out after ` + inv.b.cfg.timeoutStr + ` seconds","errorType":"TimeoutError"}`)})
	if running {
		killGroup(pid, syscall.SIGKILL) // Lambda resets a timed-out environment
	}
}

// --- Runtime API ------------------------------------------------------------

const runtimePrefix = "/2018-06-01/runtime/"

var (
	statusOK         = []byte(`{"status":"OK"}`)
	invalidRequestID = []byte(`{"errorMessage":"Invalid request ID: not the invocation held by this runtime","errorType":"InvalidRequestID"}`)
	runtimeGone      = []byte(`{"errorMessage":"runtime process is gone","errorType":"Runtime.Unavailable"}`)
)

// serveRuntime answers one Runtime API request on c.
func (inv *invoker) serveRuntime(c *rtConn, r *rtRequest) {
	p := r.path
	if len(p) > len(runtimePrefix) && string(p[:len(runtimePrefix)]) == runtimePrefix {
		rest := p[len(runtimePrefix):]
		get, post := string(r.method) == http.MethodGet, string(r.method) == http.MethodPost
		switch {
		case string(rest) == "invocation/next":
			if get {
				inv.next(c)
				return
			}
		case string(rest) == "init/error":
			if post {
				inv.initError(c, r)
				return
			}
		case len(rest) > len("invocation/") && string(rest[:len("invocation/")]) == "invocation/":
			id, action, ok := bytes.Cut(rest[len("invocation/"):], []byte("/"))
			if ok && len(id) > 0 && post {
				switch string(action) {
				case "response":
					inv.post(c, r, id, false)
					return
				case "error":
					inv.post(c, r, id, true)
					return
				}
			}
		}
	}
	c.reply(http.StatusNotFound, lambdaErrorJSON("NotFound", "no such Runtime API endpoint: "+string(r.method)+" "+string(p)))
}

func (inv *invoker) next(c *rtConn) {
	b := inv.b
	inv.mu.Lock()
	g := inv.gen
	if g == nil || g.exited {
		inv.mu.Unlock()
		c.reply(http.StatusInternalServerError, runtimeGone)
		return
	}
	g.polled = true
	prev := inv.cur
	inv.cur = nil
	inv.mu.Unlock()
	if prev != nil {
		prev.complete(bridgeError(http.StatusBadGateway, "Runtime.NoResponse",
			"the runtime asked for the next invocation without responding to "+prev.id))
	}
	inv.readyOnce.Do(func() { close(inv.ready) })
	// Anything unread of this request (a body on a GET) goes now, not
	// after an invocation has been taken.
	c.settle()

	var iv *invocation
	for {
		select {
		case iv = <-b.queue:
		case <-g.dead:
			return
		}
		if iv.gone() {
			iv.complete(result{}) // disconnected while queued: drop
			continue
		}
		if c.peerGone() {
			// The runtime hung up while polling: another invoker serves it.
			b.requeue(iv)
			return
		}
		now := time.Now()
		inv.mu.Lock()
		if g.exited || inv.gen != g {
			inv.mu.Unlock()
			b.requeue(iv)
			return
		}
		iv.deadline = now.Add(b.cfg.timeout)
		inv.cur = iv
		inv.timer.Reset(b.cfg.timeout)
		inv.mu.Unlock()
		break
	}

	if iv.traceID == "" {
		iv.traceID = newTraceID(iv.deadline.Add(-b.cfg.timeout))
	}
	out := c.startReply(http.StatusOK, len(iv.event))
	out = appendHeader(out, "Lambda-Runtime-Aws-Request-Id", iv.id)
	out = append(out, "Lambda-Runtime-Deadline-Ms: "...)
	out = strconv.AppendInt(out, iv.deadline.UnixMilli(), 10)
	out = append(out, "\r\n"...)
	out = appendHeader(out, "Lambda-Runtime-Invoked-Function-Arn", b.cfg.arn)
	out = appendHeader(out, "Lambda-Runtime-Trace-Id", iv.traceID)
	if iv.clientContext != "" {
		out = appendHeader(out, "Lambda-Runtime-Client-Context", iv.clientContext)
	}
	if iv.cognito != "" {
		out = appendHeader(out, "Lambda-Runtime-Cognito-Identity", iv.cognito)
	}
	c.send(out, iv.event)
}

// post handles invocation/{id}/response and invocation/{id}/error.
func (inv *invoker) post(c *rtConn, r *rtRequest, id []byte, isError bool) {
	b := inv.b
	inv.mu.Lock()
	iv := inv.cur
	inv.mu.Unlock()
	if iv == nil || iv.id != string(id) {
		c.reply(http.StatusBadRequest, invalidRequestID)
		return
	}

	limit := b.cfg.maxBytes
	buf := getBuf()
	if cl := r.contentLength(); cl > 0 && cl <= limit {
		if cl > 1<<20 {
			cl = 1 << 20 // more as it arrives
		}
		buf.Grow(int(cl))
	}
	_, err := buf.ReadFrom(io.LimitReader(&r.body, limit+1))
	tooLarge := int64(buf.Len()) > limit
	if err != nil && !tooLarge {
		putBuf(buf)
		c.closeAfter = true
		if malformedBody(err) {
			c.replyText(http.StatusBadRequest, err.Error())
		}
		return // otherwise the connection broke; the runtime's exit (if any) is handled elsewhere
	}
	errType := r.errType
	if !isError && !tooLarge {
		// aws-lambda-go reports failures of a streamed response in trailers.
		if t := r.body.trailerType; t != "" {
			isError, errType = true, t
			if eb, err := base64.StdEncoding.DecodeString(r.body.trailerBody); err == nil {
				buf.Reset()
				buf.Write(eb)
			}
		}
	}

	inv.mu.Lock()
	if inv.cur != iv { // timed out (or the runtime died) meanwhile
		inv.mu.Unlock()
		putBuf(buf)
		c.reply(http.StatusBadRequest, invalidRequestID)
		return
	}
	inv.cur = nil
	inv.timer.Stop()
	inv.mu.Unlock()

	switch {
	case tooLarge:
		putBuf(buf)
		msg := "Response payload size exceeded maximum allowed payload size (" + strconv.FormatInt(limit, 10) + " bytes)."
		iv.complete(bridgeError(http.StatusBadGateway, "Function.ResponseSizeTooLarge", msg))
		c.reply(http.StatusRequestEntityTooLarge, lambdaErrorJSON("RequestEntityTooLarge", msg))
		return
	case isError:
		payload, et, msg := errorPayload(buf.Bytes(), errType)
		putBuf(buf)
		b.logf("invocation %s failed: %s: %s", iv.id, et, truncate(msg, 512))
		iv.complete(result{kind: resFuncError, body: payload})
	default:
		iv.complete(result{kind: resOK, body: buf.Bytes(), buf: buf})
	}
	c.reply(http.StatusAccepted, statusOK)
}

func (inv *invoker) initError(c *rtConn, r *rtRequest) {
	body, _ := readBody(&r.body, -1, 1<<20)
	_, errType, msg := errorPayload(body, r.errType)
	inv.mu.Lock()
	polled := inv.gen != nil && inv.gen.polled
	inv.mu.Unlock()
	// Recorded before answering: the runtime may exit as soon as it has the
	// answer, and its exit must not be taken for the cause.
	if polled {
		inv.b.logf("invoker %d: runtime reported an init error after start-up: %s: %s", inv.idx, errType, truncate(msg, 512))
	} else {
		inv.b.fatal(errType, msg)
	}
	c.reply(http.StatusAccepted, statusOK)
}

type lambdaError struct {
	ErrorMessage json.RawMessage `json:"errorMessage"`
	ErrorType    json.RawMessage `json:"errorType"`
}

// errorPayload turns a runtime's error post into the client body, and
// extracts type and message for logging. A JSON object is passed unchanged.
func errorPayload(body []byte, headerType string) (payload []byte, errType, msg string) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		var le lambdaError
		_ = json.Unmarshal(trimmed, &le)
		errType, msg = rawText(le.ErrorType), rawText(le.ErrorMessage)
		if errType == "" {
			errType = headerType
		}
		if errType == "" {
			errType = "Unhandled"
		}
		return append([]byte(nil), trimmed...), errType, msg
	}
	errType = headerType
	if errType == "" {
		errType = "Unhandled"
	}
	msg = string(body)
	return lambdaErrorJSON(errType, msg), errType, msg
}

// rawText renders a JSON value for a log line: strings unquoted.
func rawText(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
