package main

// The kubelet's HTTPS API as far as the API server uses it: container logs, exec, port
// forwarding and health (kubernetes pkg/kubelet/server/server.go).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

type kubeletServer struct {
	m *podManager
}

func (s *kubeletServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.containerLogs)
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", s.exec)
	mux.HandleFunc("/exec/{ns}/{pod}/{uid}/{container}", s.exec)
	mux.HandleFunc("/portForward/{ns}/{pod}", s.portForward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", s.portForward)
	return mux
}

// serve listens on addr (host:port or unix:/path) with a self-signed certificate.
func (s *kubeletServer) serve(ctx context.Context, addr string, names []string) error {
	cert, err := selfSigned(names)
	if err != nil {
		return err
	}
	var ln net.Listener
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		_ = os.Remove(path)
		ln, err = net.Listen("unix", path)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func selfSigned(names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// containerSpec finds a container of the pod by name.
func containerSpec(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
			return &c
		}
	}
	return nil
}

// instances are a container's Docker instances, newest first.
func (s *kubeletServer) instances(ctx context.Context, pod *v1.Pod, name string) ([]dockerContainer, error) {
	cs, err := docker.listContainers(ctx, labelPodUID+"="+string(pod.UID), labelContainer+"="+name)
	if err != nil {
		return nil, err
	}
	pc := &podContainers{instances: map[string][]dockerContainer{}}
	for _, c := range cs {
		pc.instances[name] = append(pc.instances[name], c)
	}
	list := pc.instances[name]
	sortNewestFirst(list)
	return list, nil
}

func waitingReason(pod *v1.Pod, name string) string {
	for _, list := range [][]v1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, st := range list {
			if st.Name == name && st.State.Waiting != nil {
				switch st.State.Waiting.Reason {
				case "ErrImagePull", "ImagePullBackOff":
					return "trying and failing to pull image"
				case "":
				default:
					return st.State.Waiting.Reason
				}
			}
		}
	}
	if len(pod.Spec.InitContainers) > 0 {
		return "PodInitializing"
	}
	return "ContainerCreating"
}

func (s *kubeletServer) pod(w http.ResponseWriter, ns, name string) *v1.Pod {
	pod, err := s.m.pods.Pods(ns).Get(name)
	if err != nil {
		httpError(w, fmt.Sprintf("pod %q not found", ns+"/"+name), http.StatusNotFound)
		return nil
	}
	return pod
}

func (s *kubeletServer) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, podName, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	pod := s.pod(w, ns, podName)
	if pod == nil {
		return
	}
	if containerSpec(pod, name) == nil {
		httpError(w, fmt.Sprintf("container %s is not valid for pod %s", name, podName), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	list, err := s.instances(r.Context(), pod, name)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var inst *dockerContainer
	if q.Get("previous") == "true" {
		if len(list) < 2 {
			httpError(w, fmt.Sprintf("previous terminated container %q in pod %q not found", name, podName), http.StatusBadRequest)
			return
		}
		inst = &list[1]
	} else {
		if len(list) == 0 || (list[0].State.Status == "created" && !startFailed(&list[0])) {
			httpError(w, fmt.Sprintf("container %q in pod %q is waiting to start: %s", name, podName, waitingReason(pod, name)), http.StatusBadRequest)
			return
		}
		inst = &list[0]
	}
	follow := q.Get("follow") == "true"
	tail := int64(-1)
	if v := q.Get("tailLines"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			tail = n
		}
	}
	since := ""
	if v := q.Get("sinceSeconds"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			since = strconv.FormatInt(time.Now().Unix()-n, 10)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			since = strconv.FormatInt(t.Unix(), 10)
		}
	}
	var out io.Writer = flushWriter{w}
	if v := q.Get("limitBytes"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			out = &limitWriter{w: out, n: n}
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	_ = docker.logs(r.Context(), out, inst.ID, follow, q.Get("timestamps") == "true", tail, since)
}

// runningInstance is the docker ID of the container's running instance.
func (s *kubeletServer) runningInstance(ctx context.Context, ns, podName, name string) (string, error) {
	pod, err := s.m.pods.Pods(ns).Get(podName)
	if err != nil {
		return "", fmt.Errorf("pod %s/%s not found", ns, podName)
	}
	list, err := s.instances(ctx, pod, name)
	if err != nil {
		return "", err
	}
	if len(list) == 0 || !list[0].State.Running {
		return "", fmt.Errorf("container not found (%q)", name)
	}
	return list[0].ID, nil
}

func (s *kubeletServer) exec(w http.ResponseWriter, r *http.Request) {
	ns, podName, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	pod := s.pod(w, ns, podName)
	if pod == nil {
		return
	}
	if uid := r.PathValue("uid"); uid != "" && uid != string(pod.UID) {
		httpError(w, fmt.Sprintf("pod %s/%s with UID %s not found", ns, podName, uid), http.StatusNotFound)
		return
	}
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()["command"]
	remotecommand.ServeExec(w, r, &dockerExecutor{s: s, ns: ns}, podName, string(pod.UID), name, cmd, opts,
		4*time.Hour, 30*time.Second, remotecommand.SupportedStreamingProtocols)
}

type dockerExecutor struct {
	s  *kubeletServer
	ns string
}

// ExecInContainer runs `docker exec` with the streams; a non-zero exit is a CodeExitError,
// returned as is: cri-streaming recognises it by type to report the exit code.
func (e *dockerExecutor) ExecInContainer(ctx context.Context, podName string, _ string, container string, cmd []string, in io.Reader, out, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	id, err := e.s.runningInstance(ctx, e.ns, podName, container)
	if err != nil {
		return err
	}
	args := []string{"exec"}
	if in != nil {
		args = append(args, "-i")
	}
	if tty {
		args = append(args, "-t")
	}
	args = append(args, id)
	args = append(args, cmd...)
	c := exec.CommandContext(ctx, "docker", args...)
	if tty {
		err = runWithPTY(c, in, out, resize)
	} else {
		err = runPiped(c, in, out, stderr)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return utilexec.CodeExitError{Err: err, Code: ee.ExitCode()}
	}
	return err
}

// runPiped runs c with stdin copied in a goroutine that Wait does not wait for (the client may
// never close its stdin).
func runPiped(c *exec.Cmd, in io.Reader, out, stderr io.Writer) error {
	var wg sync.WaitGroup
	if out != nil {
		c.Stdout = out
	}
	if stderr != nil {
		c.Stderr = stderr
	}
	var stdin io.WriteCloser
	if in != nil {
		p, err := c.StdinPipe()
		if err != nil {
			return err
		}
		stdin = p
	}
	if err := c.Start(); err != nil {
		return err
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	err := c.Wait()
	wg.Wait()
	return err
}

func (s *kubeletServer) portForward(w http.ResponseWriter, r *http.Request) {
	ns, podName := r.PathValue("ns"), r.PathValue("pod")
	pod := s.pod(w, ns, podName)
	if pod == nil {
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, &podForwarder{ip: pod.Status.PodIP}, podName, string(pod.UID), opts,
		4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
}

type podForwarder struct{ ip string }

func (f *podForwarder) PortForward(ctx context.Context, _ string, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if f.ip == "" {
		return fmt.Errorf("the pod has no IP address yet")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(f.ip, strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	<-done
	return nil
}

// httpError writes a plain-text error as the kubelet does (no trailing newline: the API server
// puts the body into the Status message).
func httpError(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}
