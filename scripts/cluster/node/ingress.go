package main

// `ingress`: the Knative networking layer of the test cluster. Knative Serving hands routing
// to whatever implements KIngress (ingresses.networking.internal.knative.dev); this one marks
// each KIngress of its class ready with one internal load balancer domain (knative/networking
// pkg/apis/networking/v1alpha1/ingress_lifecycle.go) and proxies HTTP by Host and path to the
// ready endpoints of the split's Service.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

var kingressGVR = schema.GroupVersionResource{Group: "networking.internal.knative.dev", Version: "v1alpha1", Resource: "ingresses"}

const ingressClassAnnotation = "networking.knative.dev/ingress.class"

// KIngress spec, the fields this ingress reads (knative/networking pkg/apis/networking/v1alpha1/ingress_types.go).
type kingress struct {
	Name      string
	Namespace string
	Spec      struct {
		Rules []kingressRule `json:"rules"`
	} `json:"spec"`
}

type kingressRule struct {
	Hosts      []string `json:"hosts"`
	Visibility string   `json:"visibility"`
	HTTP       *struct {
		Paths []kingressPath `json:"paths"`
	} `json:"http"`
}

type kingressPath struct {
	Path          string                       `json:"path"`
	Headers       map[string]kingressHeaderMat `json:"headers"`
	RewriteHost   string                       `json:"rewriteHost"`
	AppendHeaders map[string]string            `json:"appendHeaders"`
	Splits        []kingressSplit              `json:"splits"`
}

type kingressHeaderMat struct {
	Exact string `json:"exact"`
}

type kingressSplit struct {
	ServiceName      string             `json:"serviceName"`
	ServiceNamespace string             `json:"serviceNamespace"`
	ServicePort      intstr.IntOrString `json:"servicePort"`
	Percent          int                `json:"percent"`
	AppendHeaders    map[string]string  `json:"appendHeaders"`
}

type ingressController struct {
	class          string
	domainInternal string
	dyn            dynamic.Interface
	lister         cache.GenericLister
	services       corelisters.ServiceLister
	slices         discoverylisters.EndpointSliceLister
	allowed        []*net.IPNet
	queue          workqueue.TypedRateLimitingInterface[string]
	proxy          *httputil.ReverseProxy
}

func runIngress(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingress", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	class := fs.String("class", "fnctl.ingress.networking.knative.dev", "ingress class this ingress serves")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP address")
	domain := fs.String("domain-internal", "", "the load balancer's in-cluster domain written to KIngress status")
	var cidrs listFlag
	fs.Var(&cidrs, "upstream-cidr", "address range proxied requests may go to (repeatable; default 10.244.0.0/16 and 127.0.0.0/8)")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *domain == "" {
		return fmt.Errorf("--kubeconfig and --domain-internal are required")
	}
	if len(cidrs) == 0 {
		cidrs = listFlag{"10.244.0.0/16", "127.0.0.0/8"}
	}
	ic := &ingressController{class: *class, domainInternal: *domain}
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("--upstream-cidr %q: %v", c, err)
		}
		ic.allowed = append(ic.allowed, n)
	}
	rc, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	if ic.dyn, err = dynamic.NewForConfig(rc); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	df := dynamicinformer.NewDynamicSharedInformerFactory(ic.dyn, 0)
	inf := df.ForResource(kingressGVR)
	ic.lister = inf.Lister()
	kf := informers.NewSharedInformerFactory(client, 0)
	ic.services = kf.Core().V1().Services().Lister()
	ic.slices = kf.Discovery().V1().EndpointSlices().Lister()
	ic.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			ic.queue.Add(key)
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
	})
	ic.proxy = &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetXForwarded() }, // the target is set in ServeHTTP
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "upstream error: "+err.Error(), http.StatusBadGateway)
		},
	}
	df.Start(ctx.Done())
	kf.Start(ctx.Done())
	df.WaitForCacheSync(ctx.Done())
	kf.WaitForCacheSync(ctx.Done())
	go func() {
		for ic.processNext(ctx) {
		}
	}()
	go func() {
		<-ctx.Done()
		ic.queue.ShutDown()
	}()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ic, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Printf("ingress class %s serving on %s", ic.class, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (ic *ingressController) processNext(ctx context.Context) bool {
	key, quit := ic.queue.Get()
	if quit {
		return false
	}
	defer ic.queue.Done(key)
	if err := ic.reconcile(ctx, key); err != nil {
		log.Printf("kingress %s: %v", key, err)
		ic.queue.AddRateLimited(key)
	} else {
		ic.queue.Forget(key)
	}
	return true
}

// ours: the KIngress names this ingress's class.
func (ic *ingressController) ours(u *unstructured.Unstructured) bool {
	return u.GetAnnotations()[ingressClassAnnotation] == ic.class
}

// desiredStatus is the KIngress status this ingress writes; conditions keep their
// transition times when already true.
func desiredStatus(u *unstructured.Unstructured, domain string, now time.Time) map[string]any {
	old, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	conds := []any{}
	for _, t := range []string{"LoadBalancerReady", "NetworkConfigured", "Ready"} {
		ltt := now.UTC().Format(time.RFC3339)
		for _, o := range old {
			if m, ok := o.(map[string]any); ok && m["type"] == t && m["status"] == "True" {
				if s, ok := m["lastTransitionTime"].(string); ok {
					ltt = s
				}
			}
		}
		conds = append(conds, map[string]any{"type": t, "status": "True", "lastTransitionTime": ltt})
	}
	lb := func() map[string]any {
		return map[string]any{"ingress": []any{map[string]any{"domainInternal": domain}}}
	}
	return map[string]any{
		"observedGeneration":  u.GetGeneration(),
		"conditions":          conds,
		"publicLoadBalancer":  lb(),
		"privateLoadBalancer": lb(),
	}
}

// statusCurrent: the object's status already says what desiredStatus would.
func statusCurrent(u *unstructured.Unstructured, want map[string]any) bool {
	have, ok, _ := unstructured.NestedMap(u.Object, "status")
	if !ok {
		return false
	}
	if g, _, _ := unstructured.NestedInt64(have, "observedGeneration"); g != u.GetGeneration() {
		return false
	}
	for _, k := range []string{"publicLoadBalancer", "privateLoadBalancer", "conditions"} {
		if fmt.Sprint(normalizeJSON(have[k])) != fmt.Sprint(normalizeJSON(want[k])) {
			return false
		}
	}
	return true
}

// normalizeJSON makes numbers comparable between decoded JSON and Go values.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			if k == "severity" && x == "" {
				continue
			}
			out[k] = normalizeJSON(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalizeJSON(x)
		}
		return out
	case int64, int, float64:
		return fmt.Sprint(t)
	}
	return v
}

func (ic *ingressController) reconcile(ctx context.Context, key string) error {
	obj, err := ic.lister.Get(key)
	if err != nil {
		return nil // deleted
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || !ic.ours(u) || u.GetDeletionTimestamp() != nil {
		return nil
	}
	want := desiredStatus(u, ic.domainInternal, time.Now())
	if statusCurrent(u, want) {
		return nil
	}
	u = u.DeepCopy()
	if err := unstructured.SetNestedField(u.Object, want, "status"); err != nil {
		return err
	}
	_, err = ic.dyn.Resource(kingressGVR).Namespace(u.GetNamespace()).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

// ingresses are this class's KIngresses, by namespace and name.
func (ic *ingressController) ingresses() []kingress {
	objs, err := ic.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []kingress
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || !ic.ours(u) || u.GetDeletionTimestamp() != nil {
			continue
		}
		var k kingress
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &k); err != nil {
			continue
		}
		k.Name, k.Namespace = u.GetName(), u.GetNamespace()
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// matchRoute finds the first rule naming host, then its first path whose prefix and header
// matches fit the request.
func matchRoute(ings []kingress, host, path string, header http.Header) (*kingressPath, bool) {
	hostFound := false
	for i := range ings {
		for _, rule := range ings[i].Spec.Rules {
			if !hasHost(rule.Hosts, host) || rule.HTTP == nil {
				continue
			}
			hostFound = true
			for j := range rule.HTTP.Paths {
				p := &rule.HTTP.Paths[j]
				if p.Path != "" && !strings.HasPrefix(path, p.Path) {
					continue
				}
				ok := true
				for name, m := range p.Headers {
					if header.Get(name) != m.Exact {
						ok = false
					}
				}
				if ok {
					return p, true
				}
			}
		}
	}
	return nil, hostFound
}

func hasHost(hosts []string, host string) bool {
	for _, h := range hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// pickSplit chooses a split by percent with roll in [0,100).
func pickSplit(splits []kingressSplit, roll int) *kingressSplit {
	if len(splits) == 0 {
		return nil
	}
	acc := 0
	for i := range splits {
		acc += splits[i].Percent
		if roll < acc {
			return &splits[i]
		}
	}
	if len(splits) == 1 {
		return &splits[0] // a single split may leave percent unset
	}
	return &splits[len(splits)-1]
}

// endpoint is a ready address and port of the split's Service.
func (ic *ingressController) endpoint(s *kingressSplit) (string, error) {
	svc, err := ic.services.Services(s.ServiceNamespace).Get(s.ServiceName)
	if err != nil {
		return "", fmt.Errorf("service %s/%s not found", s.ServiceNamespace, s.ServiceName)
	}
	var sp *v1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (s.ServicePort.Type == intstr.Int && p.Port == s.ServicePort.IntVal) ||
			(s.ServicePort.Type == intstr.String && p.Name == s.ServicePort.StrVal) {
			sp = p
		}
	}
	if sp == nil {
		return "", fmt.Errorf("service %s/%s has no port %s", s.ServiceNamespace, s.ServiceName, s.ServicePort.String())
	}
	slices, err := ic.slices.EndpointSlices(s.ServiceNamespace).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: s.ServiceName}))
	if err != nil {
		return "", err
	}
	return readyEndpoint(slices, sp, rand.IntN)
}

// readyEndpoint picks one ready address:port for the service port among the slices.
func readyEndpoint(slices []*discoveryv1.EndpointSlice, sp *v1.ServicePort, intn func(int) int) (string, error) {
	var candidates []string
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port := int32(-1)
		for _, p := range sl.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == sp.Name && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				candidates = append(candidates, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("no ready endpoints")
	}
	sort.Strings(candidates)
	return candidates[intn(len(candidates))], nil
}

func (ic *ingressController) allowedUpstream(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, n := range ic.allowed {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

func (ic *ingressController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ings := ic.ingresses()
	host := r.Host
	for hop := 0; hop < 3; hop++ {
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		p, hostFound := matchRoute(ings, h, r.URL.Path, r.Header)
		if p == nil {
			if hostFound {
				http.Error(w, "no route for this path", http.StatusNotFound)
			} else {
				http.Error(w, fmt.Sprintf("no ingress rule for host %q", h), http.StatusNotFound)
			}
			return
		}
		if p.RewriteHost != "" {
			host = p.RewriteHost
			r.Host = host
			continue
		}
		split := pickSplit(p.Splits, rand.IntN(100))
		if split == nil {
			http.Error(w, "route has no backends", http.StatusServiceUnavailable)
			return
		}
		target, err := ic.endpoint(split)
		if err != nil {
			http.Error(w, "no healthy upstream: "+err.Error(), http.StatusBadGateway)
			return
		}
		if !ic.allowedUpstream(target) {
			http.Error(w, "upstream "+target+" is outside the allowed ranges", http.StatusBadGateway)
			return
		}
		for k, v := range p.AppendHeaders {
			r.Header.Set(k, v)
		}
		for k, v := range split.AppendHeaders {
			r.Header.Set(k, v)
		}
		r.URL.Scheme, r.URL.Host = "http", target
		ic.proxy.ServeHTTP(w, r)
		return
	}
	http.Error(w, "too many host rewrites", http.StatusLoopDetected)
}
