package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

func TestMatchRoute(t *testing.T) {
	var ing kingress
	ing.Spec.Rules = []kingressRule{{Hosts: []string{"hello.default.example.com"}}}
	ing.Spec.Rules[0].HTTP = &struct {
		Paths []kingressPath `json:"paths"`
	}{Paths: []kingressPath{
		{Path: "/", Headers: map[string]kingressHeaderMat{"Knative-Serving-Tag": {Exact: "blue"}}, Splits: []kingressSplit{{ServiceName: "blue"}}},
		{Path: "/api", Splits: []kingressSplit{{ServiceName: "api"}}},
		{Splits: []kingressSplit{{ServiceName: "main"}}},
	}}
	ings := []kingress{ing}
	h := http.Header{}
	if p, _ := matchRoute(ings, "hello.default.example.com", "/x", h); p == nil || p.Splits[0].ServiceName != "main" {
		t.Errorf("catch-all: %+v", p)
	}
	if p, _ := matchRoute(ings, "HELLO.default.example.com", "/api/v1", h); p == nil || p.Splits[0].ServiceName != "api" {
		t.Errorf("prefix: %+v", p)
	}
	h.Set("Knative-Serving-Tag", "blue")
	if p, _ := matchRoute(ings, "hello.default.example.com", "/api", h); p == nil || p.Splits[0].ServiceName != "blue" {
		t.Errorf("header match first: %+v", p)
	}
	if p, found := matchRoute(ings, "other.example.com", "/", h); p != nil || found {
		t.Errorf("unknown host: %+v %v", p, found)
	}
}

func TestPickSplit(t *testing.T) {
	splits := []kingressSplit{{ServiceName: "a", Percent: 90}, {ServiceName: "b", Percent: 10}}
	if s := pickSplit(splits, 0); s.ServiceName != "a" {
		t.Error(s.ServiceName)
	}
	if s := pickSplit(splits, 89); s.ServiceName != "a" {
		t.Error(s.ServiceName)
	}
	if s := pickSplit(splits, 90); s.ServiceName != "b" {
		t.Error(s.ServiceName)
	}
	if s := pickSplit([]kingressSplit{{ServiceName: "only"}}, 50); s == nil || s.ServiceName != "only" {
		t.Error("a single split without percent takes everything")
	}
	if pickSplit(nil, 1) != nil {
		t.Error("no splits")
	}
}

func ptr[T any](v T) *T { return &v }

func TestReadyEndpoint(t *testing.T) {
	sp := &v1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt(8012)}
	slices := []*discoveryv1.EndpointSlice{{
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8012))}, {Name: ptr("metrics"), Port: ptr(int32(9090))}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
			{Addresses: []string{"10.244.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
		},
	}}
	got, err := readyEndpoint(slices, sp, func(int) int { return 0 })
	if err != nil || got != "10.244.0.7:8012" {
		t.Errorf("%s %v", got, err)
	}
	slices[0].Endpoints[1].Conditions.Ready = ptr(false)
	if _, err := readyEndpoint(slices, sp, func(int) int { return 0 }); err == nil {
		t.Error("nothing ready")
	}
}

func kingressObject(name, class string, gen int64, rules []any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "Ingress",
		"metadata": map[string]any{"name": name, "namespace": "default", "generation": gen,
			"annotations": map[string]any{ingressClassAnnotation: class}},
		"spec": map[string]any{"rules": rules},
	}}
	return u
}

func TestKIngressStatus(t *testing.T) {
	u := kingressObject("hello", "c", 3, nil)
	want := desiredStatus(u, "lb.example.svc", time.Now())
	if statusCurrent(u, want) {
		t.Fatal("no status yet")
	}
	_ = unstructured.SetNestedField(u.Object, want, "status")
	// Round trip through JSON as the API returns it.
	data, _ := u.MarshalJSON()
	var back unstructured.Unstructured
	if err := back.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	if !statusCurrent(&back, desiredStatus(&back, "lb.example.svc", time.Now().Add(time.Hour))) {
		t.Error("a written status is current (and keeps its transition times)")
	}
	pub, _, _ := unstructured.NestedSlice(back.Object, "status", "publicLoadBalancer", "ingress")
	priv, _, _ := unstructured.NestedSlice(back.Object, "status", "privateLoadBalancer", "ingress")
	if len(pub) != 1 || len(priv) != 1 || pub[0].(map[string]any)["domainInternal"] != "lb.example.svc" {
		t.Errorf("load balancers %v %v", pub, priv)
	}
	back.SetGeneration(4)
	if statusCurrent(&back, desiredStatus(&back, "lb.example.svc", time.Now())) {
		t.Error("a new generation needs a new status")
	}
}

// TestIngressProxy routes a request through a KIngress to a backend on loopback.
func TestIngressProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Host+" "+r.URL.Path+" "+r.Header.Get("Knative-Serving-Revision"))
	}))
	defer backend.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	port, _ := strconv.Atoi(portStr)

	kidx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	rule := map[string]any{"hosts": []any{"hello.default.example.com"}, "http": map[string]any{"paths": []any{
		map[string]any{"splits": []any{map[string]any{"serviceName": "hello-00001", "serviceNamespace": "default",
			"servicePort": int64(80), "percent": int64(100), "appendHeaders": map[string]any{"Knative-Serving-Revision": "hello-00001"}}}},
	}}}
	_ = kidx.Add(kingressObject("hello", "ours", 1, []any{rule}))
	_ = kidx.Add(kingressObject("theirs", "other", 1, []any{map[string]any{"hosts": []any{"theirs.example.com"}, "http": rule["http"]}}))
	sidx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = sidx.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hello-00001", Namespace: "default"},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(8012)}}}})
	eidx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "hello-00001-abc", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "hello-00001"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(port))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
	}
	_ = eidx.Add(slice)
	_, lo, _ := net.ParseCIDR("127.0.0.0/8")
	ic := &ingressController{
		class:    "ours",
		lister:   cache.NewGenericLister(kidx, kingressGVR.GroupResource()),
		services: corelisters.NewServiceLister(sidx),
		slices:   discoverylisters.NewEndpointSliceLister(eidx),
		allowed:  []*net.IPNet{lo},
		proxy:    &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetXForwarded() }},
	}
	front := httptest.NewServer(ic)
	defer front.Close()
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", front.URL+"/path", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("hello.default.example.com"); code != 200 || body != "hello.default.example.com /path hello-00001" {
		t.Errorf("routed: %d %q", code, body)
	}
	if code, _ := get("theirs.example.com"); code != 404 {
		t.Errorf("another class's host: %d", code)
	}
	slice.Endpoints[0].Conditions.Ready = ptr(false)
	_ = eidx.Update(slice)
	if code, body := get("hello.default.example.com"); code != 502 || !strings.Contains(body, "no ready endpoints") {
		t.Errorf("nothing ready: %d %q", code, body)
	}
	ic.allowed = nil
	slice.Endpoints[0].Conditions.Ready = ptr(true)
	_ = eidx.Update(slice)
	if code, _ := get("hello.default.example.com"); code != 502 {
		t.Errorf("an endpoint outside the allowed ranges: %d", code)
	}
}
