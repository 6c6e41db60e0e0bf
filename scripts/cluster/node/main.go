// Command fnctl-test-node is the node of fnctl's test cluster: a kubelet stand-in that runs
// pods as Docker containers (`node`), the Knative ingress stand-in (`ingress`), and the pod
// sandbox's process (`pause`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const usage = `usage: fnctl-test-node node|ingress|pause [flags]`

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "pause":
		<-ctx.Done()
		return
	case "node":
		err = runNode(ctx, os.Args[2:])
	case "ingress":
		err = runIngress(ctx, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Printf("fnctl-test-node %s: %v", os.Args[1], err)
		os.Exit(1)
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "fnctl-test-node"
	return cfg, nil
}

func runNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	cfg := &nodeConfig{}
	fs.StringVar(&cfg.nodeName, "node-name", "fnctl-test-node", "name of the Node")
	fs.StringVar(&cfg.nodeIP, "node-ip", "", "InternalIP to advertise")
	listen := fs.String("listen", "", "kubelet API address: host:port or unix:/path")
	fs.IntVar(&cfg.port, "port", 10250, "advertised kubelet endpoint port")
	fs.StringVar(&cfg.network, "network", "fnctl-tc-pods", "docker network of pod sandboxes")
	fs.StringVar(&cfg.pauseImage, "pause-image", "", "image of the pod sandbox")
	fs.StringVar(&cfg.stateDir, "state-dir", "", "directory for pod volumes and termination logs")
	var mirrorFlags, hostFlags listFlag
	fs.Var(&mirrorFlags, "mirror", "HOST=MIRROR: pull images of registry HOST from MIRROR (repeatable)")
	fs.Var(&hostFlags, "add-host", "NAME:IP for every pod's /etc/hosts (repeatable)")
	_ = fs.Parse(args)
	if *kubeconfig == "" || cfg.nodeIP == "" || *listen == "" || cfg.pauseImage == "" || cfg.stateDir == "" {
		return fmt.Errorf("--kubeconfig, --node-ip, --listen, --pause-image and --state-dir are required")
	}
	cfg.mirrors = mirrors{}
	for _, m := range mirrorFlags {
		host, to, ok := strings.Cut(m, "=")
		if !ok || host == "" || to == "" {
			return fmt.Errorf("--mirror %q: want HOST=MIRROR", m)
		}
		cfg.mirrors[host] = to
	}
	cfg.addHosts = hostFlags
	if err := os.MkdirAll(cfg.stateDir, 0o755); err != nil {
		return err
	}
	rc, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	agent := &nodeAgent{cfg: cfg, client: client, dockerVersion: docker.version(ctx)}
	pods := newPodManager(ctx, cfg, client)
	srv := &kubeletServer{m: pods}
	errs := make(chan error, 2)
	go func() { errs <- srv.serve(ctx, *listen, []string{cfg.nodeName, cfg.nodeIP, "127.0.0.1"}) }()
	node, err := agent.register(ctx)
	if err != nil {
		return err
	}
	log.Printf("node %s registered (InternalIP %s)", cfg.nodeName, cfg.nodeIP)
	go agent.run(ctx, node)
	go func() { errs <- pods.run(ctx) }()
	select {
	case <-ctx.Done():
		log.Printf("stopping; containers stay")
		return nil
	case err := <-errs:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}
