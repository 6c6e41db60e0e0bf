// Command gateway is the front of one local fnctl service: it holds the
// service's published port and forwards every request to the revision that
// currently serves, inside the service's own Docker network. fnctl switches it
// to a new revision once that one is ready; requests already on their way to
// the old one finish there. It is a separate program from the runtime bridge
// (which runs inside each revision) so that it can grow on its own.
//
//	gateway serve              listen on :$PORT, forward to $FNCTL_UPSTREAM (host:port)
//	gateway switch HOST:PORT   tell the running gateway to forward to HOST:PORT
//
// The switch travels over a Unix socket in the gateway's own /tmp: only a
// process inside its container (docker exec, which fnctl uses) reaches it, no
// function and no network peer.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	controlSocket = "/tmp/fnctl-gateway.sock"
	dialTimeout   = 2 * time.Second
	headerTimeout = 30 * time.Second
	drainTimeout  = 30 * time.Second
)

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 1 && args[0] == "serve":
		os.Exit(serve(os.Getenv("PORT"), os.Getenv("FNCTL_UPSTREAM"), controlSocket))
	case len(args) == 2 && args[0] == "switch":
		if err := requestSwitch(controlSocket, args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: gateway serve | gateway switch HOST:PORT")
		os.Exit(2)
	}
}

// gateway forwards to one upstream at a time; each upstream has its own
// transport, so that switching away closes only the old one's idle connections.
type gateway struct {
	mu        sync.RWMutex
	upstream  string
	transport *http.Transport
}

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     60 * time.Second,
	}
}

func (g *gateway) current() (string, *http.Transport) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.upstream, g.transport
}

// switchTo makes `upstream` the target once it accepts a connection.
func (g *gateway) switchTo(upstream string) error {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return fmt.Errorf("not HOST:PORT: %q", upstream)
	}
	conn, err := net.DialTimeout("tcp", upstream, dialTimeout)
	if err != nil {
		return fmt.Errorf("%s does not accept connections: %v", upstream, err)
	}
	conn.Close()
	g.mu.Lock()
	old := g.transport
	g.upstream, g.transport = upstream, newTransport()
	g.mu.Unlock()
	if old != nil {
		old.CloseIdleConnections() // requests in flight on the old revision finish there
	}
	log.Printf("gateway: forwarding to %s", upstream)
	return nil
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upstream, transport := g.current()
	proxy := &httputil.ReverseProxy{
		Director: func(out *http.Request) {
			out.URL.Scheme = "http"
			out.URL.Host = upstream
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Printf("gateway: %s: %v", upstream, err)
			http.Error(w, "the function's revision did not answer", http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

func serve(port, upstream, socket string) int {
	log.SetFlags(0)
	log.SetOutput(os.Stdout) // fnctl waits for the ready line on stdout
	if port == "" || upstream == "" {
		log.Print("gateway: PORT and FNCTL_UPSTREAM must be set")
		return 2
	}
	g := &gateway{upstream: upstream, transport: newTransport()}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Printf("gateway: %v", err)
		return 1
	}
	control, err := listenControl(socket, g)
	if err != nil {
		log.Printf("gateway: control socket: %v", err)
		return 1
	}
	defer control.Close()
	server := &http.Server{Handler: g, ReadHeaderTimeout: headerTimeout}
	done := make(chan struct{})
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		server.Shutdown(ctx)
		close(done)
	}()
	log.Printf("gateway: ready on %s, forwarding to %s", ln.Addr(), upstream)
	if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Printf("gateway: %v", err)
		return 1
	}
	<-done
	return 0
}

// listenControl answers one line per connection: the new upstream in, "ok" or an error out.
func listenControl(socket string, g *gateway) (net.Listener, error) {
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	os.Chmod(socket, 0o600)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(io.LimitReader(conn, 512)).ReadString('\n')
				if err != nil {
					return
				}
				if err := g.switchTo(strings.TrimSpace(line)); err != nil {
					fmt.Fprintf(conn, "error: %v\n", err)
					return
				}
				fmt.Fprintln(conn, "ok")
			}()
		}
	}()
	return ln, nil
}

func requestSwitch(socket, upstream string) error {
	conn, err := net.DialTimeout("unix", socket, dialTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(conn, upstream); err != nil {
		return err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer: %v", err)
	}
	if answer = strings.TrimSpace(answer); answer != "ok" {
		return errors.New(strings.TrimPrefix(answer, "error: "))
	}
	return nil
}
