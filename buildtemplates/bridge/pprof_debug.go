//go:build bridgepprof

package main

// Profiling build (go build -tags bridgepprof): serves net/http/pprof on
// $FNCTL_BRIDGE_PPROF (e.g. 127.0.0.1:6060). Never part of release builds.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("FNCTL_BRIDGE_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
