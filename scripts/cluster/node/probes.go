package main

// Startup, readiness and liveness probes, one goroutine per probe of a running container
// (kubernetes pkg/kubelet/prober/worker.go, prober.go), and lifecycle hooks.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type probeManager struct {
	w       *podWorker
	mu      sync.Mutex
	running map[string]*containerProbes // docker ID -> probes of that instance
}

type containerProbes struct {
	cancel  context.CancelFunc
	ready   bool
	started bool
}

func newProbeManager(w *podWorker) *probeManager {
	return &probeManager{w: w, running: map[string]*containerProbes{}}
}

// result is the readiness and started state of a running instance.
func (pm *probeManager) result(id string) (bool, bool) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if cp, ok := pm.running[id]; ok {
		return cp.ready, cp.started
	}
	return false, false
}

func (pm *probeManager) stopAll() {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for id, cp := range pm.running {
		cp.cancel()
		delete(pm.running, id)
	}
}

// track starts probing instances that run and stops probing those that no longer do.
func (pm *probeManager) track(pod *v1.Pod, pc *podContainers, podIP string) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	seen := map[string]bool{}
	add := func(c *v1.Container, regularInit bool) {
		list := pc.instances[c.Name]
		if len(list) == 0 || !list[0].State.Running {
			return
		}
		inst := list[0]
		seen[inst.ID] = true
		if _, ok := pm.running[inst.ID]; ok {
			return
		}
		ctx, cancel := context.WithCancel(pm.w.m.ctx)
		cp := &containerProbes{cancel: cancel}
		pm.running[inst.ID] = cp
		if regularInit {
			cp.started = true // a running init container is started and never ready
			return
		}
		cp.started = c.StartupProbe == nil
		cp.ready = c.ReadinessProbe == nil && cp.started
		p := &prober{pm: pm, cp: cp, pod: pod, c: c, id: inst.ID, podIP: podIP, startedAt: inst.State.StartedAt}
		if c.StartupProbe != nil {
			go p.loop(ctx, "startup", c.StartupProbe)
		}
		if c.ReadinessProbe != nil {
			go p.loop(ctx, "readiness", c.ReadinessProbe)
		}
		if c.LivenessProbe != nil {
			go p.loop(ctx, "liveness", c.LivenessProbe)
		}
		if c.StartupProbe == nil && c.ReadinessProbe == nil {
			cp.ready = true
		}
	}
	for i := range pod.Spec.InitContainers {
		add(&pod.Spec.InitContainers[i], !isSidecar(&pod.Spec.InitContainers[i]))
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i], false)
	}
	for id, cp := range pm.running {
		if !seen[id] {
			cp.cancel()
			delete(pm.running, id)
		}
	}
}

type prober struct {
	pm        *probeManager
	cp        *containerProbes
	pod       *v1.Pod
	c         *v1.Container
	id        string
	podIP     string
	startedAt time.Time
}

func (p *prober) set(f func(cp *containerProbes) bool) {
	p.pm.mu.Lock()
	changed := f(p.cp)
	p.pm.mu.Unlock()
	if changed {
		p.pm.w.poke()
	}
}

func (p *prober) isStarted() bool {
	p.pm.mu.Lock()
	defer p.pm.mu.Unlock()
	return p.cp.started
}

func (p *prober) loop(ctx context.Context, kind string, spec *v1.Probe) {
	period := time.Duration(max(spec.PeriodSeconds, 1)) * time.Second
	success := int(max(spec.SuccessThreshold, 1))
	failure := int(max(spec.FailureThreshold, 1))
	if spec.FailureThreshold == 0 {
		failure = 3
	}
	var last bool
	run := 0
	first := true
	for {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-time.After(period):
			}
		}
		first = false
		if ctx.Err() != nil {
			return
		}
		if kind != "startup" && !p.isStarted() {
			continue
		}
		if kind == "startup" && p.isStarted() {
			return
		}
		if time.Since(p.startedAt) < time.Duration(spec.InitialDelaySeconds)*time.Second {
			continue
		}
		ok, msg := runProbe(ctx, spec, p.c, p.id, p.podIP)
		if ctx.Err() != nil {
			return
		}
		if ok == last {
			run++
		} else {
			last, run = ok, 1
		}
		switch kind {
		case "readiness":
			if !ok {
				p.pm.w.m.recorder.Eventf(p.pod, v1.EventTypeWarning, "Unhealthy", "Readiness probe failed: %s", msg)
			}
			if (ok && run >= success) || (!ok && run >= failure) {
				p.set(func(cp *containerProbes) bool { ch := cp.ready != ok; cp.ready = ok; return ch })
			}
		case "startup":
			if ok && run >= success {
				p.set(func(cp *containerProbes) bool {
					cp.started = true
					if p.c.ReadinessProbe == nil {
						cp.ready = true
					}
					return true
				})
				return
			}
			if !ok && run >= failure {
				p.kill(ctx, spec, "Startup", msg)
				return
			}
		case "liveness":
			if !ok && run >= failure {
				p.kill(ctx, spec, "Liveness", msg)
				return
			}
		}
	}
}

// kill stops a container whose liveness or startup probe failed; the pod worker restarts it.
func (p *prober) kill(ctx context.Context, spec *v1.Probe, kind, msg string) {
	grace := gracePeriod(p.pod)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	log.Printf("pod %s/%s: container %s failed %s probe (%s), will be restarted", p.pod.Namespace, p.pod.Name, p.c.Name, kind, msg)
	rec := p.pm.w.m.recorder
	rec.Eventf(p.pod, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
	rec.Eventf(p.pod, v1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", p.c.Name, strings.ToLower(kind))
	if p.c.Lifecycle != nil && p.c.Lifecycle.PreStop != nil {
		p.pm.w.runHook(ctx, p.pod, p.c, p.id, p.podIP, p.c.Lifecycle.PreStop, time.Duration(grace)*time.Second)
	}
	_ = docker.stop(ctx, grace, p.id)
	p.pm.w.poke()
}

// resolvePort is a port by number or by the name of one of the container's ports.
func resolvePort(port intstr.IntOrString, c *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port %q in container", port.StrVal)
}

// runProbe runs one probe attempt.
func runProbe(ctx context.Context, spec *v1.Probe, c *v1.Container, id, podIP string) (bool, string) {
	timeout := time.Duration(max(spec.TimeoutSeconds, 1)) * time.Second
	return runHandler(ctx, spec.ProbeHandler.Exec, spec.ProbeHandler.HTTPGet, spec.ProbeHandler.TCPSocket, spec.ProbeHandler.GRPC, c, id, podIP, timeout)
}

func runHandler(ctx context.Context, ex *v1.ExecAction, hg *v1.HTTPGetAction, tcp *v1.TCPSocketAction, grpc *v1.GRPCAction, c *v1.Container, id, podIP string, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case ex != nil:
		out, err := docker.run(ctx, append([]string{"exec", id}, ex.Command...)...)
		if err != nil {
			return false, fmt.Sprintf("%v %s", err, out)
		}
		return true, ""
	case hg != nil:
		port, err := resolvePort(hg.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := hg.Host
		if host == "" {
			host = podIP
		}
		scheme := "http"
		if hg.Scheme == v1.URISchemeHTTPS {
			scheme = "https"
		}
		u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
		pu, err := url.Parse(hg.Path)
		if err == nil {
			u.Path, u.RawQuery = pu.Path, pu.RawQuery
		} else {
			u.Path = hg.Path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("User-Agent", "kube-probe/1.35")
		req.Header.Set("Accept", "*/*")
		for _, h := range hg.HTTPHeaders {
			if http.CanonicalHeaderKey(h.Name) == "Host" {
				req.Host = h.Value
				continue
			}
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, ""
		}
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	case tcp != nil:
		port, err := resolvePort(tcp.Port, c)
		if err != nil {
			return false, err.Error()
		}
		host := tcp.Host
		if host == "" {
			host = podIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case grpc != nil:
		return grpcProbe(ctx, grpc, podIP)
	}
	return true, ""
}

var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the kubelet does not verify probe certificates
		Proxy:             nil,
	},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	},
}

// runHook runs a postStart or preStop handler (errors are only logged, as events would be).
func (w *podWorker) runHook(ctx context.Context, pod *v1.Pod, c *v1.Container, id, podIP string, h *v1.LifecycleHandler, limit time.Duration) {
	if limit <= 0 {
		return
	}
	if h.Sleep != nil {
		d := min(time.Duration(h.Sleep.Seconds)*time.Second, limit)
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		return
	}
	ok, msg := runHandler(ctx, h.Exec, h.HTTPGet, h.TCPSocket, nil, c, id, podIP, limit)
	if !ok {
		log.Printf("pod %s/%s: lifecycle hook of container %s failed: %s", pod.Namespace, pod.Name, c.Name, msg)
	}
}

// grpcProbe: gRPC health checking would need the grpc module; this node does not offer it.
func grpcProbe(_ context.Context, _ *v1.GRPCAction, _ string) (bool, string) {
	return false, "gRPC probes are not supported by the fnctl test node"
}
