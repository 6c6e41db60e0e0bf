// Command bridge is the entrypoint of fnctl's Lambda-style function
// containers: it serves HTTP and hands every request to a pool of "bootstrap"
// processes through the AWS Lambda Runtime API (2018-06-01).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var version = "0.1.0"

// testHook, if set (by tests only), is given the bridge before it starts.
var testHook func(*bridge)

const (
	soReusePort   = 0xf // SO_REUSEPORT on linux (amd64, arm64, ...); not in package syscall
	maxDrain      = 30 * time.Second
	headerTimeout = 30 * time.Second // for a public request's header
	termGrace     = 2 * time.Second
	exitFatal     = 1
	exitMisconf   = 2
	readyMessage  = "fnctl-bridge: ready on %s with %d invokers\n"
)

func main() {
	tuneRuntime()
	if os.Getpid() == 1 || os.Getenv("FNCTL_BRIDGE_REAP") == "1" {
		enableReaper()
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sigs))
}

// run is the whole bridge; it returns the process exit status.
func run(args, environ []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bridge [-version] [bootstrap [args...]]\n")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return exitMisconf
	}
	if *showVersion {
		fmt.Fprintf(stdout, "fnctl-bridge %s (%s)\n", version, runtime.Version())
		return 0
	}
	cfg, err := loadConfig(fs.Args(), environ)
	if err != nil {
		fmt.Fprintf(stderr, "fnctl-bridge: %v\n", err)
		return exitMisconf
	}

	b := newBridge(cfg, stderr)
	if testHook != nil {
		testHook(b)
	}
	for i := 0; i < cfg.invokers; i++ {
		inv, err := newInvoker(b, i)
		if err != nil {
			fmt.Fprintf(stderr, "fnctl-bridge: cannot open a Runtime API listener: %v\n", err)
			for _, inv := range b.invokers {
				inv.rt.Close()
			}
			return exitFatal
		}
		b.invokers = append(b.invokers, inv)
	}
	for _, inv := range b.invokers {
		go inv.supervise()
	}

	// Ready once the first bootstrap asks for an invocation: requests queue for
	// it while the others finish starting, so a cold start costs one runtime's
	// start-up, not the slowest of N started at once on few CPUs. An init
	// failure still comes first: every invoker runs the same code.
	anyReady := make(chan struct{})
	var readyOnce sync.Once
	for _, inv := range b.invokers {
		go func(inv *invoker) {
			select {
			case <-inv.ready:
				readyOnce.Do(func() { close(anyReady) })
			case <-b.stopCh:
			}
		}(inv)
	}
	select {
	case <-anyReady:
	case err := <-b.fatalCh:
		fmt.Fprintf(stderr, "fnctl-bridge: %v\n", err)
		b.stopAll(true)
		return exitFatal
	case <-sigs:
		b.stopAll(false)
		return 0
	}

	ln, err := listenPublic(cfg.host, cfg.port)
	if err != nil {
		fmt.Fprintf(stderr, "fnctl-bridge: cannot listen on %s: %v\n", net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port)), err)
		b.stopAll(true)
		return exitFatal
	}
	srv := &http.Server{
		Handler: b,
		// No ReadTimeout/WriteTimeout: a legitimate request may queue and
		// then run for up to FUNCTION_TIMEOUT (and ReadTimeout would cancel
		// it: net/http's read after the body would time out). The body
		// has its own deadline (bridge.readBody).
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       5 * time.Minute,
		ConnContext:       withConn,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(newConnLimiter(ln, cfg.maxConns)) }()
	fmt.Fprintf(stdout, readyMessage, ln.Addr().String(), cfg.invokers)
	go b.releaseMemoryWhenIdle(10 * time.Second)

	select {
	case err := <-b.fatalCh:
		fmt.Fprintf(stderr, "fnctl-bridge: %v\n", err)
		srv.Close()
		b.stopAll(true)
		return exitFatal
	case err := <-serveErr:
		fmt.Fprintf(stderr, "fnctl-bridge: serving failed: %v\n", err)
		b.stopAll(true)
		return exitFatal
	case <-sigs:
	}

	// Graceful shutdown: stop accepting, drain in-flight and queued requests.
	drain := cfg.timeout
	if drain > maxDrain {
		drain = maxDrain
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	err = srv.Shutdown(ctx)
	cancel()
	if err != nil {
		b.abortOnce.Do(func() { close(b.abort) }) // remaining clients get 503
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(ctx)
		cancel()
		srv.Close()
	}
	b.stopAll(false)
	return 0
}

// stopAll stops every bootstrap (SIGTERM, then SIGKILL after termGrace, or
// SIGKILL at once if hard) and closes the Runtime API listeners.
func (b *bridge) stopAll(hard bool) {
	if !setOnce(&b.stopping) {
		return
	}
	close(b.stopCh)
	b.abortOnce.Do(func() { close(b.abort) })
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	for _, inv := range b.invokers {
		inv.stop(sig)
	}
	grace := time.NewTimer(termGrace)
	defer grace.Stop()
	for _, inv := range b.invokers {
		select {
		case <-inv.exited:
		case <-grace.C:
			for _, inv := range b.invokers {
				inv.stop(syscall.SIGKILL)
			}
			<-inv.exited
		}
	}
	for _, inv := range b.invokers {
		inv.rt.Close()
	}
}

// listenPublic opens the public listener with SO_REUSEPORT, so that a new
// container can bind the port while the old one still drains.
func listenPublic(host string, port int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

// tuneRuntime sizes GOMAXPROCS to half the container's CPUs (quota-aware,
// which Go 1.19 is not), unless GOMAXPROCS is set. GOGC stays at its default: the relay
// allocates little, and a larger heap goal would inflate peak memory.
func tuneRuntime() {
	if os.Getenv("GOMAXPROCS") == "" {
		cpus := availableCPUs()
		// The bridge only relays; the bootstraps need the CPU. Fewer Ps
		// also mean fewer cross-thread wake-ups per hand-off, which
		// measurably raised throughput on 2 cores (about +25%).
		procs := cpus / 2
		if procs < 1 {
			procs = 1
		}
		runtime.GOMAXPROCS(procs)
	}
}

// availableCPUs is the number of CPUs, limited by a cgroup CPU quota.
func availableCPUs() int {
	cpus := runtime.NumCPU()
	if n := cgroupCPUs(); n > 0 && n < cpus {
		cpus = n
	}
	return cpus
}

// cgroupCPUs returns ceil(quota/period) from cgroup v2 or v1, or 0.
func cgroupCPUs() int {
	var quota, period float64
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		f := strings.Fields(string(b))
		if len(f) != 2 || f[0] == "max" {
			return 0
		}
		quota, _ = strconv.ParseFloat(f[0], 64)
		period, _ = strconv.ParseFloat(f[1], 64)
	} else {
		q, err1 := os.ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
		p, err2 := os.ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
		if err1 != nil || err2 != nil {
			return 0
		}
		quota, _ = strconv.ParseFloat(strings.TrimSpace(string(q)), 64)
		period, _ = strconv.ParseFloat(strings.TrimSpace(string(p)), 64)
	}
	if quota <= 0 || period <= 0 {
		return 0
	}
	return int(math.Ceil(quota / period))
}

// releaseMemoryWhenIdle hands memory back to the OS once traffic stops, so
// an idle bridge stays small after a burst (1000 connections' buffers and
// stacks would otherwise linger until the runtime's slow scavenger runs).
func (b *bridge) releaseMemoryWhenIdle(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64
	busy := false
	for {
		select {
		case <-t.C:
		case <-b.stopCh:
			return
		}
		n := b.requests.Load()
		switch {
		case n != last:
			busy = true
		case busy:
			busy = false
			runtime.GC()         // a first cycle only moves sync.Pool contents (e.g.
			debug.FreeOSMemory() // net/http's bufio pools) to the victim cache

		}
		last = n
	}
}
