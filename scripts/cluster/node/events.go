package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
)

// dockerEvents calls wake with the pod UID of every container of this node that starts or dies.
func dockerEvents(ctx context.Context, node string, wake func(uid string)) error {
	cmd := exec.CommandContext(ctx, "docker", "events",
		"--filter", "type=container", "--filter", "label="+labelNode+"="+node,
		"--filter", "event=start", "--filter", "event=die", "--filter", "event=oom",
		"--format", "{{json .}}")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Actor struct {
				Attributes map[string]string
			}
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			if uid := ev.Actor.Attributes[labelPodUID]; uid != "" {
				wake(uid)
			}
		}
	}
	return cmd.Wait()
}
