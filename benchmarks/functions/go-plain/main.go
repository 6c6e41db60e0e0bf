// go-plain: the baseline of the bridge benchmark, the same echo (prefix + the
// request body) as a plain net/http server on $FNCTL_LISTEN_HOST:$PORT.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

const prefix = ""

func main() {
	addr := net.JoinHostPort(os.Getenv("FNCTL_LISTEN_HOST"), os.Getenv("PORT"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("go-plain: ready on %s\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(append([]byte(prefix), event...))
	}))
}
