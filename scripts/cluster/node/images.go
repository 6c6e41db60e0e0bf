package main

// Image references, registry mirrors and the kubelet's pull policy
// (behaviour mirrored from kubernetes pkg/kubelet/images/image_manager.go).

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
)

// imageRef is a parsed image reference: [host/]path[:tag][@digest].
type imageRef struct {
	Host   string // "" when the reference names none (Docker Hub)
	Path   string
	Tag    string
	Digest string
}

var (
	pathComponent = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
	pathRE        = regexp.MustCompile(`^` + pathComponent + `(?:/` + pathComponent + `)*$`)
	hostRE        = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$`)
	tagRE         = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	digestRE      = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$`)
)

// parseImage parses a reference as the distribution/reference grammar does (host, path, tag, digest).
func parseImage(s string) (imageRef, error) {
	var r imageRef
	if s == "" || strings.TrimSpace(s) != s {
		return r, fmt.Errorf("invalid reference format")
	}
	rest := s
	if i := strings.Index(rest, "@"); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !digestRE.MatchString(r.Digest) {
			return r, fmt.Errorf("invalid reference format")
		}
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !tagRE.MatchString(r.Tag) {
			return r, fmt.Errorf("invalid reference format")
		}
	}
	if i := strings.Index(rest, "/"); i >= 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[") {
			r.Host = first
			rest = rest[i+1:]
			if !hostRE.MatchString(r.Host) {
				return r, fmt.Errorf("invalid reference format")
			}
		}
	}
	r.Path = rest
	if !pathRE.MatchString(r.Path) {
		if strings.ToLower(r.Path) != r.Path {
			return r, fmt.Errorf("invalid reference format: repository name must be lowercase")
		}
		return r, fmt.Errorf("invalid reference format")
	}
	return r, nil
}

func (r imageRef) repository() string {
	if r.Host == "" {
		return r.Path
	}
	return r.Host + "/" + r.Path
}

func (r imageRef) String() string {
	s := r.repository()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// mirrors maps a registry host to the registry its images are pulled from (containerd hosts.toml).
type mirrors map[string]string

// apply returns the reference to pull and run: ref with its host replaced when a mirror names it.
func (m mirrors) apply(r imageRef) imageRef {
	if to, ok := m[r.Host]; ok && r.Host != "" {
		r.Host = to
	}
	return r
}

// defaultPullPolicy is the API server's default: Always for :latest or no tag (and no digest).
func defaultPullPolicy(image string) v1.PullPolicy {
	r, err := parseImage(image)
	if err == nil && r.Digest == "" && (r.Tag == "" || r.Tag == "latest") {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}

// pullError is a failed image step: reason is ErrImagePull, ImagePullBackOff, ErrImageNeverPull or InvalidImageName.
type pullError struct {
	reason, message string
}

func (e *pullError) Error() string { return e.reason + ": " + e.message }

// pulledImage says what to run and what the status reports.
type pulledImage struct {
	runRef  string // the reference docker runs (mirrored)
	imageID string // status.imageID
}

type imageManager struct {
	mirrors mirrors
	backoff *backoff
	lastErr sync.Map // backoff key -> last pull message
	mu      sync.Mutex
	pulls   map[string]*sync.Mutex // one pull of a reference at a time
}

func newImageManager(m mirrors) *imageManager {
	return &imageManager{mirrors: m, backoff: newBackoff(10*time.Second, 5*time.Minute), pulls: map[string]*sync.Mutex{}}
}

func (im *imageManager) pullLock(ref string) *sync.Mutex {
	im.mu.Lock()
	defer im.mu.Unlock()
	l, ok := im.pulls[ref]
	if !ok {
		l = &sync.Mutex{}
		im.pulls[ref] = l
	}
	return l
}

// ensure makes the container's image present as its pull policy says.
// event is how the image manager reports Pulling/Pulled/Failed/BackOff as the kubelet's events.
type eventFunc func(eventType, reason, message string)

func (im *imageManager) ensure(ctx context.Context, podUID string, c *v1.Container, event eventFunc) (*pulledImage, error) {
	ref, err := parseImage(c.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: couldn't parse image name %q: %v", c.Image, c.Image, err)
		event(v1.EventTypeWarning, "InspectFailed", msg)
		return nil, &pullError{"InvalidImageName", msg}
	}
	run := im.mirrors.apply(ref)
	if run.Tag == "" && run.Digest == "" {
		run.Tag = "latest"
	}
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = defaultPullPolicy(c.Image)
	}
	present, _ := docker.imageInspect(ctx, run.String())
	if policy == v1.PullNever {
		if present == nil {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			event(v1.EventTypeWarning, "ErrImageNeverPull", msg)
			return nil, &pullError{"ErrImageNeverPull", msg}
		}
		return &pulledImage{run.String(), im.imageID(ref, run, present)}, nil
	}
	if policy == v1.PullIfNotPresent && present != nil {
		event(v1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return &pulledImage{run.String(), im.imageID(ref, run, present)}, nil
	}
	key := podUID + "_" + c.Image
	if im.backoff.inBackoffSinceUpdate(key, time.Now()) {
		last, _ := im.lastErr.Load(key)
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		if last != nil {
			msg += ": ErrImagePull: " + last.(string)
		}
		event(v1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image))
		return nil, &pullError{"ImagePullBackOff", msg}
	}
	lock := im.pullLock(run.String())
	event(v1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	began := time.Now()
	lock.Lock()
	err = docker.pull(ctx, run.String())
	lock.Unlock()
	if err != nil {
		im.backoff.next(key, time.Now())
		msg := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
		msg = fmt.Sprintf("failed to pull and unpack image %q: %s", c.Image, msg)
		im.lastErr.Store(key, msg)
		event(v1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", c.Image, msg))
		return nil, &pullError{"ErrImagePull", msg}
	}
	im.backoff.reset(key)
	im.lastErr.Delete(key)
	info, err := docker.imageInspect(ctx, run.String())
	if err != nil {
		return nil, &pullError{"ErrImagePull", err.Error()}
	}
	event(v1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(began).Round(time.Millisecond)))
	return &pulledImage{run.String(), im.imageID(ref, run, info)}, nil
}

// imageID is repository@sha256 digest under the spec's (unmirrored) name, or the local image ID
// when the image came from no registry.
func (im *imageManager) imageID(spec, run imageRef, info *imageInfo) string {
	for _, d := range info.RepoDigests {
		if i := strings.Index(d, "@"); i >= 0 && d[:i] == run.repository() {
			return qualified(spec) + d[i:]
		}
	}
	if len(info.RepoDigests) > 0 {
		return info.RepoDigests[0]
	}
	return info.ID
}

// qualified is a repository with Docker Hub's implicit parts spelled out, as containerd reports it.
func qualified(r imageRef) string {
	if r.Host != "" {
		return r.repository()
	}
	if !strings.Contains(r.Path, "/") {
		return "docker.io/library/" + r.Path
	}
	return "docker.io/" + r.Path
}
