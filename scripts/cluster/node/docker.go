package main

// The Docker engine, driven through the docker CLI (keeps the module small). Every
// container the node makes carries the labels below, so a restarted node finds them again.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	labelNode      = "fnctl-tc.node"
	labelPodUID    = "fnctl-tc.pod-uid"
	labelPodName   = "fnctl-tc.pod-name"
	labelPodNS     = "fnctl-tc.pod-namespace"
	labelContainer = "fnctl-tc.container"
	labelKind      = "fnctl-tc.kind" // sandbox, init or app
	labelAttempt   = "fnctl-tc.attempt"
	labelImage     = "fnctl-tc.image"    // the image as the pod spec names it
	labelImageID   = "fnctl-tc.image-id" // what status.imageID reports
)

type dockerCLI struct{}

var docker dockerCLI

// run runs `docker args...` and returns its stdout; the error carries docker's stderr.
func (dockerCLI) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), &dockerError{args: args, msg: msg}
	}
	return out.String(), nil
}

type dockerError struct {
	args []string
	msg  string
}

func (e *dockerError) Error() string { return e.msg }

func isNoSuch(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such")
}

// dockerContainer is the part of `docker inspect` the node reads.
type dockerContainer struct {
	ID      string
	Name    string
	Created time.Time
	Image   string
	State   struct {
		Status     string
		Running    bool
		OOMKilled  bool
		ExitCode   int
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
	}
	Config struct {
		Labels map[string]string
	}
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string
		}
	}
}

func (c *dockerContainer) attempt() int {
	n, _ := strconv.Atoi(c.Config.Labels[labelAttempt])
	return n
}

// ended: the container ran and is no longer running.
func (c *dockerContainer) ended() bool {
	return !c.State.Running && (c.State.Status == "exited" || c.State.Status == "dead")
}

// listContainers inspects every container whose labels match all filters (label=value or label).
func (d dockerCLI) listContainers(ctx context.Context, labels ...string) ([]dockerContainer, error) {
	args := []string{"ps", "-aq", "--no-trunc"}
	for _, l := range labels {
		args = append(args, "--filter", "label="+l)
	}
	out, err := d.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, nil
	}
	return d.inspect(ctx, ids...)
}

func (d dockerCLI) inspect(ctx context.Context, ids ...string) ([]dockerContainer, error) {
	out, err := d.run(ctx, append([]string{"inspect", "--type", "container"}, ids...)...)
	var cs []dockerContainer
	if jerr := json.Unmarshal([]byte(out), &cs); jerr != nil && err == nil {
		return nil, fmt.Errorf("docker inspect: %v", jerr)
	}
	if err != nil && !isNoSuch(err) {
		return nil, err
	}
	// A container removed between ps and inspect is simply not there.
	return cs, nil
}

func (d dockerCLI) remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := d.run(ctx, append([]string{"rm", "-f", "-v"}, ids...)...)
	if isNoSuch(err) {
		return nil
	}
	return err
}

func (d dockerCLI) stop(ctx context.Context, grace int64, id string) error {
	if grace < 0 {
		grace = 0
	}
	_, err := d.run(ctx, "stop", "-t", strconv.FormatInt(grace, 10), id)
	if isNoSuch(err) {
		return nil
	}
	return err
}

func (d dockerCLI) version(ctx context.Context) string {
	out, err := d.run(ctx, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(out)
}

// imageInfo is the part of `docker image inspect` the node reads.
type imageInfo struct {
	ID          string
	RepoDigests []string
}

func (d dockerCLI) imageInspect(ctx context.Context, ref string) (*imageInfo, error) {
	out, err := d.run(ctx, "image", "inspect", ref)
	if err != nil {
		return nil, err
	}
	var infos []imageInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) == 0 {
		return nil, fmt.Errorf("docker image inspect %s: unreadable answer", ref)
	}
	return &infos[0], nil
}

func (d dockerCLI) pull(ctx context.Context, ref string) error {
	_, err := d.run(ctx, "pull", "-q", ref)
	return err
}

// logs streams `docker logs` of a container into w (stdout and stderr interleaved as written).
func (d dockerCLI) logs(ctx context.Context, w io.Writer, id string, follow, timestamps bool, tail int64, since string) error {
	args := []string{"logs"}
	if follow {
		args = append(args, "--follow")
	}
	if timestamps {
		args = append(args, "--timestamps")
	}
	if tail >= 0 {
		args = append(args, "--tail", strconv.FormatInt(tail, 10))
	}
	if since != "" {
		args = append(args, "--since", since)
	}
	args = append(args, id)
	cmd := exec.CommandContext(ctx, "docker", args...)
	sw := &syncWriter{w: w}
	cmd.Stdout, cmd.Stderr = sw, sw
	return cmd.Run()
}

// lastLogBytes returns at most maxLines lines / maxBytes bytes of the end of a container's log.
func (d dockerCLI) lastLogBytes(ctx context.Context, id string, maxLines int, maxBytes int) string {
	var b bytes.Buffer
	_ = d.logs(ctx, &b, id, false, false, int64(maxLines), "")
	s := b.Bytes()
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return string(s)
}
