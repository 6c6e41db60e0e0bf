package main

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeObjects struct {
	cms     map[string]*v1.ConfigMap
	secrets map[string]*v1.Secret
}

func (f fakeObjects) configMap(_, name string) (*v1.ConfigMap, error) { return f.cms[name], nil }
func (f fakeObjects) secret(_, name string) (*v1.Secret, error)       { return f.secrets[name], nil }

func TestContainerEnv(t *testing.T) {
	yes := true
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u-1", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec:       v1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
	}
	objs := fakeObjects{
		cms:     map[string]*v1.ConfigMap{"cm": {Data: map[string]string{"K1": "v1", "bad key": "x"}}},
		secrets: map[string]*v1.Secret{"s": {Data: map[string][]byte{"pw": []byte("secret")}}},
	}
	c := &v1.Container{
		Name:      "c",
		Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}},
		EnvFrom: []v1.EnvFromSource{
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}, Prefix: "CM_"},
			{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "missing"}, Optional: &yes}},
		},
		Env: []v1.EnvVar{
			{Name: "NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "HOST", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "LBL", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['b']"}}},
			{Name: "LABELS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
			{Name: "PW", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "pw"}}},
			{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "nope", Optional: &yes}}},
			{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "EXP", Value: "$(NAME)-$(CM_K1)-$$(NAME)-$(UNDEFINED)"},
			{Name: "NAME", Value: "override"},
		},
	}
	pc := &podEnvContext{pod: pod, podIP: "10.244.0.5", hostIP: "10.254.0.1", objects: objs,
		services: []envVar{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}}
	env, err := containerEnv(pc, c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var names []string
	for _, e := range env {
		got[e.Name] = e.Value
		names = append(names, e.Name)
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "CM_K1": "v1", "NAME": "override", "IP": "10.244.0.5",
		"HOST": "10.254.0.1", "NODE": "n1", "LBL": "2", "LABELS": "a=\"1\"\nb=\"2\"", "PW": "secret",
		"MEM": "64", "CPU": "8", "EXP": "p-v1-$(NAME)-$(UNDEFINED)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["OPT"]; ok {
		t.Error("an optional missing key sets no variable")
	}
	if _, ok := got["CM_bad key"]; ok {
		t.Error("an invalid name from envFrom is skipped")
	}
	if names[0] != "KUBERNETES_SERVICE_HOST" {
		t.Errorf("service links come first: %v", names)
	}
	// A missing required secret is an error (CreateContainerConfigError).
	c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}
	if _, err := containerEnv(pc, c); err == nil || !strings.Contains(err.Error(), `secret "nope" not found`) {
		t.Errorf("missing secret: %v", err)
	}
}

func TestServiceEnv(t *testing.T) {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-svc"}, Spec: v1.ServiceSpec{
		ClusterIP: "10.96.0.7", Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}}
	got := map[string]string{}
	for _, e := range serviceEnv([]*v1.Service{svc}) {
		got[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		"MY_SVC_SERVICE_HOST": "10.96.0.7", "MY_SVC_SERVICE_PORT": "80", "MY_SVC_SERVICE_PORT_HTTP": "80",
		"MY_SVC_PORT": "tcp://10.96.0.7:80", "MY_SVC_PORT_80_TCP_ADDR": "10.96.0.7",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
