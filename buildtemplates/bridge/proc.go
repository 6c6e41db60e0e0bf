package main

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

// Child process bookkeeping.
//
// Normally each bootstrap is waited for individually. When the bridge runs
// as PID 1 (a container entrypoint) it must also reap orphans, e.g. the curl
// children of a killed bash bootstrap, or they pile up as zombies. Then a
// single SIGCHLD-driven reaper calls wait4(-1) and hands each exit status to
// whoever started that pid; unknown pids (orphans) are simply discarded.
var reaper struct {
	sync.Mutex
	on      bool
	waiting map[int]chan syscall.WaitStatus
}

// enableReaper switches to reaping all children. Call before starting any.
func enableReaper() {
	reaper.Lock()
	defer reaper.Unlock()
	if reaper.on {
		return
	}
	reaper.on = true
	reaper.waiting = make(map[int]chan syscall.WaitStatus)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			reapAll()
		}
	}()
}

func reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		// Taking the lock after wait4 orders this after the registration
		// done (under the same lock) by startProcess.
		reaper.Lock()
		c := reaper.waiting[pid]
		delete(reaper.waiting, pid)
		reaper.Unlock()
		if c != nil {
			c <- ws
		}
	}
}

// startProcess starts cmd and returns a channel that receives its exit status.
func startProcess(cmd *exec.Cmd) (<-chan syscall.WaitStatus, error) {
	c := make(chan syscall.WaitStatus, 1)
	reaper.Lock()
	if reaper.on {
		defer reaper.Unlock()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		reaper.waiting[cmd.Process.Pid] = c
		// A SIGCHLD delivered before registration was already handled, but
		// its wait4 blocks on our lock, so the status still reaches c.
		return c, nil
	}
	reaper.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := cmd.Process
	go func() {
		st, err := p.Wait()
		if err != nil {
			c <- syscall.WaitStatus(0xff << 8) // "exit status 255"
			return
		}
		c <- st.Sys().(syscall.WaitStatus)
	}()
	return c, nil
}

// killGroup signals the whole process group led by pid.
func killGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// describeStatus renders a wait status like os.ProcessState.String.
func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	default:
		return "unknown exit status " + strconv.Itoa(int(ws))
	}
}
