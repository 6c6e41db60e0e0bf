package main

// The bridge under hostile load, measured on the real binary: `go build`
// here, run as a subprocess, its memory read from /proc/PID/status.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildBridge compiles the bridge as images do (static, stripped).
func buildBridge(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	bin := filepath.Join(t.TempDir(), "bridge")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the bridge: %v\n%s", err, out)
	}
	return bin
}

var rssRE = regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB$`)

// vmKB reads a VmRSS/VmHWM-style field of /proc/PID/status, in KiB.
func vmKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// slowRSSBoundMiB is the most the bridge may hold with 1,000 connections
// that each sent a header and 4 KiB of a 6 MiB body (about 40 KiB each:
// a goroutine, net/http's buffers and the body read so far).
const slowRSSBoundMiB = 64

func TestSlowBodiesDoNotGrowMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	bin := buildBridge(t)
	cmd := exec.Command(bin)
	cmd.Env = baseEnv(t)
	stdout := newSyncBuf()
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := stdout.waitFor(t, readyRE, 30*time.Second)[1]
	pid := cmd.Process.Pid
	before := vmKB(t, pid, "VmRSS")

	// A bridge over the bound is killed at once: this machine is shared.
	overBound := make(chan int, 1)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(2 * time.Millisecond):
			}
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
			if err != nil {
				return
			}
			if m := rssRE.FindSubmatch(b); m != nil {
				if kb, _ := strconv.Atoi(string(m[1])); kb > slowRSSBoundMiB<<10 {
					cmd.Process.Kill()
					overBound <- kb
					return
				}
			}
		}
	}()
	checkBound := func(when string) {
		t.Helper()
		select {
		case kb := <-overBound:
			t.Fatalf("RSS %d MiB %s (bound %d MiB): bridge killed", kb>>10, when, slowRSSBoundMiB)
		default:
		}
	}

	// Two waves of 1,000: the second one may reuse the memory of the first.
	const conns, sent = 1000, 4 << 10
	head := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(defaultMaxBytes) + "\r\n\r\n"
	part := strings.Repeat("s", sent)
	var open []net.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	for wave := 1; wave <= 2; wave++ {
		for _, c := range open {
			c.Close()
		}
		open = open[:0]
		for i := 0; i < conns; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			open = append(open, c)
			if _, err := c.Write([]byte(head + part)); err != nil {
				checkBound("while connecting")
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		time.Sleep(time.Second) // for the bridge to read what has been sent
		checkBound("after wave " + strconv.Itoa(wave))
		t.Logf("wave %d: RSS %d MiB", wave, vmKB(t, pid, "VmRSS")>>10)
	}

	// A normal request is answered meanwhile.
	r := do(t, "POST", "http://"+addr+"/", "still served")
	expect(t, r, 200, "still served")
	checkBound("at the end")

	peak := vmKB(t, pid, "VmHWM")
	t.Logf("bridge RSS: %d MiB before, peak %d MiB with %d connections each holding %d bytes of a %d-byte body",
		before>>10, peak>>10, conns, sent, defaultMaxBytes)
	if peak > slowRSSBoundMiB<<10 {
		t.Fatalf("peak RSS %d MiB, bound %d MiB", peak>>10, slowRSSBoundMiB)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for _, c := range open {
		c.SetReadDeadline(deadline)
		if n, _ := c.Read(make([]byte, 1)); n != 0 {
			t.Fatal("a slow connection was answered before its body arrived")
		}
	}
}
