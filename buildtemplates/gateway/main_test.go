package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func backend(t *testing.T, word string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", word, r.URL.Path, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url string) string {
	resp, err := http.Post(url+"/p", "text/plain", strings.NewReader("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

func TestForwardsAndSwitchesOverTheControlSocket(t *testing.T) {
	one, two := backend(t, "one"), backend(t, "two")
	g := &gateway{upstream: one.Listener.Addr().String(), transport: newTransport()}
	front := httptest.NewServer(g)
	defer front.Close()
	socket := filepath.Join(t.TempDir(), "control.sock")
	control, err := listenControl(socket, g)
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close()

	if got := get(t, front.URL); got != "200 one /p b" {
		t.Fatalf("before the switch: %q", got)
	}
	if err := requestSwitch(socket, two.Listener.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if got := get(t, front.URL); got != "200 two /p b" {
		t.Fatalf("after the switch: %q", got)
	}
}

func TestRefusesAnUpstreamThatDoesNotAccept(t *testing.T) {
	one := backend(t, "one")
	g := &gateway{upstream: one.Listener.Addr().String(), transport: newTransport()}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if err := g.switchTo(addr); err == nil {
		t.Fatal("switched to a port nobody listens on")
	}
	if err := g.switchTo("no-port"); err == nil {
		t.Fatal("switched to an address without a port")
	}
	if up, _ := g.current(); up != one.Listener.Addr().String() {
		t.Fatalf("upstream changed to %q", up)
	}
}

func TestAnswers502WhenTheRevisionIsGone(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	front := httptest.NewServer(&gateway{upstream: addr, transport: newTransport()})
	defer front.Close()
	if got := get(t, front.URL); !strings.HasPrefix(got, "502 ") {
		t.Fatalf("got %q", got)
	}
}
