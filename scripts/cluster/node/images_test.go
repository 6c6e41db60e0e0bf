package main

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestParseImage(t *testing.T) {
	cases := []struct {
		in                      string
		host, path, tag, digest string
	}{
		{"busybox", "", "busybox", "", ""},
		{"library/busybox:1.36", "", "library/busybox", "1.36", ""},
		{"127.0.0.1:5000/fn/hello:v1", "127.0.0.1:5000", "fn/hello", "v1", ""},
		{"localhost/x", "localhost", "x", "", ""},
		{"knative.registry.svc.cluster.local/ns/fn@sha256:" + sha, "knative.registry.svc.cluster.local", "ns/fn", "", "sha256:" + sha},
		{"gcr.io/a/b:t@sha256:" + sha, "gcr.io", "a/b", "t", "sha256:" + sha},
	}
	for _, c := range cases {
		r, err := parseImage(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if r.Host != c.host || r.Path != c.path || r.Tag != c.tag || r.Digest != c.digest {
			t.Errorf("%s: got %+v", c.in, r)
		}
		if r.String() != c.in {
			t.Errorf("%s: String() = %s", c.in, r.String())
		}
	}
	for _, bad := range []string{"", "Not_Valid::x", "UPPER/case", "a b", "x@sha256:short", "x:" + string(make([]byte, 0)) + "bad tag"} {
		if _, err := parseImage(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestMirrors(t *testing.T) {
	m := mirrors{"knative.registry.svc.cluster.local": "127.0.0.1:5000"}
	r, _ := parseImage("knative.registry.svc.cluster.local/ns/fn@sha256:" + sha)
	if got := m.apply(r).String(); got != "127.0.0.1:5000/ns/fn@sha256:"+sha {
		t.Errorf("mirrored: %s", got)
	}
	r, _ = parseImage("other.example/ns/fn:v1")
	if got := m.apply(r).String(); got != "other.example/ns/fn:v1" {
		t.Errorf("unmirrored: %s", got)
	}
	// imageID reports the spec's repository with the pulled digest.
	spec, _ := parseImage("knative.registry.svc.cluster.local/ns/fn:v1")
	run := m.apply(spec)
	id := (&imageManager{}).imageID(spec, run, &imageInfo{ID: "sha256:aaa", RepoDigests: []string{"127.0.0.1:5000/ns/fn@sha256:" + sha}})
	if id != "knative.registry.svc.cluster.local/ns/fn@sha256:"+sha {
		t.Errorf("imageID %s", id)
	}
	local, _ := parseImage("fnctl-local/debian:bookworm")
	if id := (&imageManager{}).imageID(local, local, &imageInfo{ID: "sha256:bbb"}); id != "sha256:bbb" {
		t.Errorf("local imageID %s", id)
	}
	hub, _ := parseImage("busybox:1")
	if id := (&imageManager{}).imageID(hub, hub, &imageInfo{RepoDigests: []string{"busybox@sha256:" + sha}}); id != "docker.io/library/busybox@sha256:"+sha {
		t.Errorf("hub imageID %s", id)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for img, want := range map[string]v1.PullPolicy{
		"busybox":                        v1.PullAlways,
		"busybox:latest":                 v1.PullAlways,
		"busybox:1.36":                   v1.PullIfNotPresent,
		"busybox@sha256:" + sha:          v1.PullIfNotPresent,
		"127.0.0.1:5000/x:latest":        v1.PullAlways,
		"127.0.0.1:5000/x@sha256:" + sha: v1.PullIfNotPresent,
	} {
		if got := defaultPullPolicy(img); got != want {
			t.Errorf("%s: %s, want %s", img, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(10*time.Second, 5*time.Minute)
	now := time.Now()
	if b.inBackoffSince("k", now) {
		t.Fatal("no entry yet: not in back-off")
	}
	// First failure: restart at once, the next one waits 10 s, then 20 s, 40 s ... 5 min.
	b.next("k", now)
	if !b.inBackoffSince("k", now) || b.get("k") != 10*time.Second {
		t.Fatalf("after one failure: %v", b.get("k"))
	}
	if b.inBackoffSince("k", now.Add(-11*time.Second)) {
		t.Fatal("10 s after the failure the back-off is over")
	}
	for i := 0; i < 10; i++ {
		b.next("k", now)
	}
	if b.get("k") != 5*time.Minute {
		t.Fatalf("capped: %v", b.get("k"))
	}
	// A container that ran for more than 10 minutes starts over.
	b.next("k", now.Add(11*time.Minute))
	if b.get("k") != 10*time.Second {
		t.Fatalf("reset after a long run: %v", b.get("k"))
	}
	b.forget("k")
	if b.get("k") != 0 {
		t.Fatal("forgotten")
	}
}
