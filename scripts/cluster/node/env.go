package main

// Container environment as the kubelet builds it (kubernetes pkg/kubelet/kubelet_pods.go
// makeEnvironmentVariables; $(VAR) expansion as in third_party/forked/golang/expansion).

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// objectSource reads ConfigMaps and Secrets of the pod's namespace (nil, nil when absent).
type objectSource interface {
	configMap(ns, name string) (*v1.ConfigMap, error)
	secret(ns, name string) (*v1.Secret, error)
}

type envVar struct{ Name, Value string }

// podEnvContext is what env and downward API values are taken from.
type podEnvContext struct {
	pod      *v1.Pod
	podIP    string
	hostIP   string
	objects  objectSource
	services []envVar // service links, put first as the kubelet does
}

var envNameRE = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// containerEnv returns the container's variables in the kubelet's order: service links, envFrom, env.
func containerEnv(pc *podEnvContext, c *v1.Container) ([]envVar, error) {
	values := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := values[k]; !ok {
			order = append(order, k)
		}
		values[k] = v
	}
	for _, e := range pc.services {
		set(e.Name, e.Value)
	}
	ns := pc.pod.Namespace
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := pc.objects.configMap(ns, from.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := pc.objects.secret(ns, from.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := from.Prefix + k
			if envNameRE.MatchString(name) {
				set(name, data[k])
			}
		}
	}
	lookup := func(name string) (string, bool) { v, ok := values[name]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		v, ok, err := envValueFrom(pc, c, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]envVar, 0, len(order))
	for _, k := range order {
		out = append(out, envVar{k, values[k]})
	}
	return out, nil
}

// envValueFrom resolves one valueFrom; ok is false for an optional key that is absent.
func envValueFrom(pc *podEnvContext, c *v1.Container, from *v1.EnvVarSource) (string, bool, error) {
	ns := pc.pod.Namespace
	switch {
	case from.FieldRef != nil:
		v, err := podField(pc, from.FieldRef.FieldPath)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := resourceField(pc.pod, c, from.ResourceFieldRef)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := pc.objects.configMap(ns, ref.Name)
		if err != nil {
			return "", false, err
		}
		if cm == nil {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q not found", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if b, okb := cm.BinaryData[ref.Key]; okb {
				return string(b), true, nil
			}
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, true, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := pc.objects.secret(ns, ref.Name)
		if err != nil {
			return "", false, err
		}
		if s == nil {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q not found", ref.Name)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, nil
}

// podField is a downward API field of the pod.
func podField(pc *podEnvContext, path string) (string, error) {
	p := pc.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "metadata.labels":
		return formatMap(p.Labels), nil
	case "metadata.annotations":
		return formatMap(p.Annotations), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return pc.hostIP, nil
	case "status.podIP", "status.podIPs":
		return pc.podIP, nil
	}
	if k, ok := subscript(path, "metadata.labels"); ok {
		return p.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return p.Annotations[k], nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	if !strings.HasPrefix(path, prefix+"['") || !strings.HasSuffix(path, "']") {
		return "", false
	}
	return path[len(prefix)+2 : len(path)-2], true
}

// formatMap is the downward API's key="value" lines, sorted by key.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceField is limits/requests of a container, divided by the divisor and rounded up;
// an unset limit reports the node's allocatable (kubernetes pkg/api/v1/resource helpers.go).
func resourceField(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" {
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
			}
		}
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == ref.ContainerName {
				target = &pod.Spec.InitContainers[i]
			}
		}
		if target == nil {
			return "", fmt.Errorf("container %q not found", ref.ContainerName)
		}
	}
	var q resource.Quantity
	var found bool
	switch ref.Resource {
	case "limits.cpu":
		q, found = target.Resources.Limits[v1.ResourceCPU]
		if !found {
			q = resource.MustParse(nodeCPU)
		}
	case "limits.memory":
		q, found = target.Resources.Limits[v1.ResourceMemory]
		if !found {
			q = resource.MustParse(nodeMemory)
		}
	case "limits.ephemeral-storage":
		q, found = target.Resources.Limits[v1.ResourceEphemeralStorage]
		if !found {
			q = resource.MustParse(nodeStorage)
		}
	case "requests.cpu":
		q = target.Resources.Requests[v1.ResourceCPU]
	case "requests.memory":
		q = target.Resources.Requests[v1.ResourceMemory]
	case "requests.ephemeral-storage":
		q = target.Resources.Requests[v1.ResourceEphemeralStorage]
	default:
		return "", fmt.Errorf("unsupported container resource: %v", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		v := int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))
		return strconv.FormatInt(v, 10), nil
	}
	v := int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))
	return strconv.FormatInt(v, 10), nil
}

// expand replaces $(NAME) with its value when defined; $$ escapes a $.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// serviceEnv is the Docker-links style variables for services (kubelet getServiceEnvVarMap):
// the default/kubernetes service always, the pod namespace's services when enableServiceLinks.
func serviceEnv(svcs []*v1.Service) []envVar {
	var out []envVar
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		ip := s.Spec.ClusterIP
		out = append(out, envVar{name + "_SERVICE_HOST", ip})
		first := s.Spec.Ports[0]
		out = append(out, envVar{name + "_SERVICE_PORT", strconv.Itoa(int(first.Port))})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out = append(out, envVar{name + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port))})
			}
		}
		proto := strings.ToLower(string(first.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, envVar{name + "_PORT", fmt.Sprintf("%s://%s:%d", proto, ip, first.Port)})
		for _, p := range s.Spec.Ports {
			pr := string(p.Protocol)
			if pr == "" {
				pr = "TCP"
			}
			prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(pr))
			out = append(out,
				envVar{prefix, fmt.Sprintf("%s://%s:%d", strings.ToLower(pr), ip, p.Port)},
				envVar{prefix + "_PROTO", strings.ToLower(pr)},
				envVar{prefix + "_PORT", strconv.Itoa(int(p.Port))},
				envVar{prefix + "_ADDR", ip})
		}
	}
	return out
}
