package main

// Pod volumes as directories under --state-dir/pods/UID/volumes, bind-mounted into containers.
// ConfigMap, Secret, projected and downward API volumes are rewritten on every refresh with
// only what changed, as the kubelet's atomic writer keeps them current.

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

type fileContent struct {
	data []byte
	mode os.FileMode
}

// volumeManager writes a pod's volumes and remembers when its tokens need renewing.
type volumeManager struct {
	client  kubernetes.Interface
	objects objectSource
	root    string // this pod's directory
	tokens  map[string]tokenCache
}

type tokenCache struct {
	token   string
	renewAt time.Time
}

func (vm *volumeManager) volumeDir(name string) string {
	return filepath.Join(vm.root, "volumes", name)
}

// setUp makes every volume of the pod current; the first error names the volume.
func (vm *volumeManager) setUp(ctx context.Context, pod *v1.Pod, hostIP, podIP string) error {
	for _, vol := range pod.Spec.Volumes {
		dir := vm.volumeDir(vol.Name)
		var files map[string]fileContent
		var err error
		switch {
		case vol.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			_ = os.Chmod(dir, 0o777)
			continue
		case vol.HostPath != nil:
			continue
		case vol.ConfigMap != nil:
			files, err = vm.configMapFiles(pod, vol.ConfigMap.Name, vol.ConfigMap.Items, vol.ConfigMap.Optional, vol.ConfigMap.DefaultMode)
		case vol.Secret != nil:
			files, err = vm.secretFiles(pod, vol.Secret.SecretName, vol.Secret.Items, vol.Secret.Optional, vol.Secret.DefaultMode)
		case vol.DownwardAPI != nil:
			files, err = vm.downwardFiles(pod, hostIP, podIP, vol.DownwardAPI.Items, vol.DownwardAPI.DefaultMode)
		case vol.Projected != nil:
			files, err = vm.projectedFiles(ctx, pod, hostIP, podIP, vol.Projected)
		default:
			return fmt.Errorf("MountVolume.SetUp failed for volume %q: this node supports emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes only", vol.Name)
		}
		if err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %v", vol.Name, err)
		}
		if err := writeFiles(dir, files, fsGroup(pod)); err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %v", vol.Name, err)
		}
	}
	return nil
}

func fsGroup(pod *v1.Pod) *int64 {
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.FSGroup
	}
	return nil
}

func modeOf(m *int32, def os.FileMode) os.FileMode {
	if m != nil {
		return os.FileMode(*m) & 0o777
	}
	return def
}

// keyFiles maps data keys to files: every key, or only the items' keys to their paths.
func keyFiles(data map[string][]byte, items []v1.KeyToPath, optional bool, mode os.FileMode, kind, name string) (map[string]fileContent, error) {
	files := map[string]fileContent{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = fileContent{v, mode}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		files[it.Path] = fileContent{v, modeOf(it.Mode, mode)}
	}
	_ = kind
	_ = name
	return files, nil
}

func (vm *volumeManager) configMapFiles(pod *v1.Pod, name string, items []v1.KeyToPath, optional *bool, defMode *int32) (map[string]fileContent, error) {
	cm, err := vm.objects.configMap(pod.Namespace, name)
	if err != nil {
		return nil, err
	}
	opt := optional != nil && *optional
	if cm == nil {
		if opt {
			return map[string]fileContent{}, nil
		}
		return nil, fmt.Errorf("configmap %q not found", name)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, opt, modeOf(defMode, 0o644), "configmap", name)
}

func (vm *volumeManager) secretFiles(pod *v1.Pod, name string, items []v1.KeyToPath, optional *bool, defMode *int32) (map[string]fileContent, error) {
	s, err := vm.objects.secret(pod.Namespace, name)
	if err != nil {
		return nil, err
	}
	opt := optional != nil && *optional
	if s == nil {
		if opt {
			return map[string]fileContent{}, nil
		}
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return keyFiles(s.Data, items, opt, modeOf(defMode, 0o644), "secret", name)
}

func (vm *volumeManager) downwardFiles(pod *v1.Pod, hostIP, podIP string, items []v1.DownwardAPIVolumeFile, defMode *int32) (map[string]fileContent, error) {
	pc := &podEnvContext{pod: pod, hostIP: hostIP, podIP: podIP}
	files := map[string]fileContent{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(pc, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			var c *v1.Container
			if len(pod.Spec.Containers) > 0 {
				c = &pod.Spec.Containers[0]
			}
			v, err = resourceField(pod, c, it.ResourceFieldRef)
		}
		if err != nil {
			return nil, err
		}
		files[it.Path] = fileContent{[]byte(v), modeOf(it.Mode, modeOf(defMode, 0o644))}
	}
	return files, nil
}

func (vm *volumeManager) projectedFiles(ctx context.Context, pod *v1.Pod, hostIP, podIP string, p *v1.ProjectedVolumeSource) (map[string]fileContent, error) {
	files := map[string]fileContent{}
	merge := func(more map[string]fileContent) {
		for k, v := range more {
			files[k] = v
		}
	}
	mode := p.DefaultMode
	for _, src := range p.Sources {
		switch {
		case src.ConfigMap != nil:
			f, err := vm.configMapFiles(pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, mode)
			if err != nil {
				return nil, err
			}
			merge(f)
		case src.Secret != nil:
			f, err := vm.secretFiles(pod, src.Secret.Name, src.Secret.Items, src.Secret.Optional, mode)
			if err != nil {
				return nil, err
			}
			merge(f)
		case src.DownwardAPI != nil:
			f, err := vm.downwardFiles(pod, hostIP, podIP, src.DownwardAPI.Items, mode)
			if err != nil {
				return nil, err
			}
			merge(f)
		case src.ServiceAccountToken != nil:
			tok, err := vm.token(ctx, pod, src.ServiceAccountToken)
			if err != nil {
				return nil, err
			}
			m := modeOf(mode, 0o644)
			if mode == nil {
				m = 0o600 // the kubelet narrows a token to its owner unless a mode is given
				if fsGroup(pod) != nil {
					m = 0o640
				}
				if runsAsNonRoot(pod) {
					m = 0o644
				}
			}
			files[src.ServiceAccountToken.Path] = fileContent{[]byte(tok), m}
		}
	}
	return files, nil
}

// runsAsNonRoot: some container sets a user; the token must be readable by it (the kubelet
// sets the owner instead, which this node does not track per container).
func runsAsNonRoot(pod *v1.Pod) bool {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser != 0 {
		return true
	}
	for _, c := range pod.Spec.Containers {
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil && *c.SecurityContext.RunAsUser != 0 {
			return true
		}
	}
	return false
}

// token requests a bound service account token, renewed after 80% of its lifetime
// (kubernetes pkg/kubelet/token/token_manager.go).
func (vm *volumeManager) token(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection) (string, error) {
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	key := src.Audience + "/" + fmt.Sprint(exp)
	if c, ok := vm.tokens[key]; ok && time.Now().Before(c.renewAt) {
		return c.token, nil
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := vm.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to fetch token: %v", err)
	}
	life := tr.Status.ExpirationTimestamp.Sub(time.Now())
	if vm.tokens == nil {
		vm.tokens = map[string]tokenCache{}
	}
	vm.tokens[key] = tokenCache{tr.Status.Token, time.Now().Add(life * 8 / 10)}
	return tr.Status.Token, nil
}

// writeFiles makes dir hold exactly files (relative paths), touching only what changed.
func writeFiles(dir string, files map[string]fileContent, group *int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, fc := range files {
		p := filepath.Join(dir, filepath.Clean("/"+rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		old, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(old, fc.data) {
			if err := os.WriteFile(p, fc.data, fc.mode); err != nil {
				return err
			}
		}
		mode := fc.mode
		if group != nil {
			_ = os.Lchown(p, -1, int(*group))
			mode |= 0o040
		}
		_ = os.Chmod(p, mode)
	}
	// Keys that left the object leave the volume.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := files[rel]; !ok {
			if _, ok2 := files[strings.TrimPrefix(rel, "./")]; !ok2 {
				_ = os.Remove(p)
			}
		}
		return nil
	})
}

// mountArgs are the docker --mount options for a container's volumeMounts.
func (vm *volumeManager) mountArgs(pod *v1.Pod, c *v1.Container) ([]string, error) {
	var args []string
	for _, m := range c.VolumeMounts {
		var vol *v1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volume %q not found", m.Name)
		}
		src := vm.volumeDir(m.Name)
		if vol.HostPath != nil {
			src = vol.HostPath.Path
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			sub := m.SubPath
			if sub == "" {
				sub = m.SubPathExpr
			}
			src = filepath.Join(src, filepath.Clean("/"+sub))
			if _, err := os.Stat(src); os.IsNotExist(err) {
				// The kubelet creates a missing subPath as a directory.
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
			}
		}
		opt := "type=bind,source=" + src + ",target=" + m.MountPath
		if m.ReadOnly {
			opt += ",readonly"
		}
		args = append(args, "--mount", opt)
	}
	return args, nil
}
