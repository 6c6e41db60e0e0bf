package main

import (
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func inst(id string, attempt int, status string, exit int) dockerContainer {
	var c dockerContainer
	c.ID = id
	c.State.Status = status
	c.State.Running = status == "running"
	c.State.ExitCode = exit
	c.State.StartedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.State.FinishedAt = time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
	c.Config.Labels = map[string]string{labelAttempt: itoa(attempt), labelImageID: "sha256:x"}
	return c
}

func itoa(i int) string { return strconv.Itoa(i) }

func testPod(policy v1.RestartPolicy, init bool) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid", Generation: 1},
		Spec:       v1.PodSpec{RestartPolicy: policy, Containers: []v1.Container{{Name: "app", Image: "img"}}},
	}
	if init {
		p.Spec.InitContainers = []v1.Container{{Name: "init", Image: "img"}}
	}
	return p
}

func statusOf(pod *v1.Pod, instances map[string][]dockerContainer, waiting map[string]*v1.ContainerStateWaiting, ready bool) v1.PodStatus {
	if waiting == nil {
		waiting = map[string]*v1.ContainerStateWaiting{}
	}
	return computeStatus(&statusInput{
		pod: pod, pc: &podContainers{instances: instances}, podIP: "10.244.0.2", hostIP: "10.254.0.1",
		waiting: waiting, probe: func(string) (bool, bool) { return ready, true },
		startTime: &metav1.Time{}, sandboxReady: true, now: time.Now(),
	})
}

func cond(st v1.PodStatus, t v1.PodConditionType) v1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.PodCondition{}
}

func TestStatusPendingWhileInitRuns(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, true)
	st := statusOf(pod, map[string][]dockerContainer{"init": {inst("i1", 0, "running", 0)}}, nil, true)
	if st.Phase != v1.PodPending {
		t.Errorf("phase %s", st.Phase)
	}
	if cond(st, v1.PodInitialized).Status != v1.ConditionFalse || cond(st, v1.PodInitialized).Message != "containers with incomplete status: [init]" {
		t.Errorf("initialized: %+v", cond(st, v1.PodInitialized))
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Errorf("app waits PodInitializing: %+v", st.ContainerStatuses[0].State)
	}
}

func TestStatusRunningReady(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, true)
	st := statusOf(pod, map[string][]dockerContainer{
		"init": {inst("i1", 0, "exited", 0)},
		"app":  {inst("a1", 0, "running", 0)},
	}, nil, true)
	if st.Phase != v1.PodRunning || cond(st, v1.PodReady).Status != v1.ConditionTrue || cond(st, v1.PodInitialized).Status != v1.ConditionTrue {
		t.Errorf("phase %s conditions %+v", st.Phase, st.Conditions)
	}
	cs := st.ContainerStatuses[0]
	if cs.ContainerID != "docker://a1" || cs.ImageID != "sha256:x" || !cs.Ready || cs.State.Running == nil {
		t.Errorf("container status %+v", cs)
	}
	if ic := st.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" || !ic.Ready {
		t.Errorf("init status %+v", ic)
	}
	// Not ready by probe: ContainersReady and Ready false.
	st = statusOf(pod, map[string][]dockerContainer{"init": {inst("i1", 0, "exited", 0)}, "app": {inst("a1", 0, "running", 0)}}, nil, false)
	if c := cond(st, v1.PodReady); c.Status != v1.ConditionFalse || c.Reason != "ContainersNotReady" || c.Message != "containers with unready status: [app]" {
		t.Errorf("ready: %+v", c)
	}
}

func TestStatusCrashLoop(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, false)
	waiting := map[string]*v1.ContainerStateWaiting{"app": {Reason: "CrashLoopBackOff", Message: "back-off 10s"}}
	st := statusOf(pod, map[string][]dockerContainer{"app": {inst("a2", 1, "exited", 2), inst("a1", 0, "exited", 2)}}, waiting, true)
	cs := st.ContainerStatuses[0]
	if st.Phase != v1.PodRunning || cs.RestartCount != 1 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Errorf("phase %s status %+v", st.Phase, cs)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 2 || lt.Reason != "Error" || lt.ContainerID != "docker://a2" {
		t.Errorf("lastState %+v", cs.LastTerminationState)
	}
}

func TestStatusTerminalPhases(t *testing.T) {
	never := testPod(v1.RestartPolicyNever, false)
	if st := statusOf(never, map[string][]dockerContainer{"app": {inst("a", 0, "exited", 0)}}, nil, true); st.Phase != v1.PodSucceeded || cond(st, v1.PodReady).Reason != "PodCompleted" {
		t.Errorf("exit 0, Never: %s %+v", st.Phase, cond(st, v1.PodReady))
	}
	if st := statusOf(never, map[string][]dockerContainer{"app": {inst("a", 0, "exited", 1)}}, nil, true); st.Phase != v1.PodFailed {
		t.Errorf("exit 1, Never: %s", st.Phase)
	}
	onf := testPod(v1.RestartPolicyOnFailure, false)
	if st := statusOf(onf, map[string][]dockerContainer{"app": {inst("a", 0, "exited", 0)}}, nil, true); st.Phase != v1.PodSucceeded {
		t.Errorf("exit 0, OnFailure: %s", st.Phase)
	}
	// A failed init container with Never fails the pod.
	initNever := testPod(v1.RestartPolicyNever, true)
	if st := statusOf(initNever, map[string][]dockerContainer{"init": {inst("i", 0, "exited", 1)}}, nil, true); st.Phase != v1.PodFailed {
		t.Errorf("failed init, Never: %s", st.Phase)
	}
	initAlways := testPod(v1.RestartPolicyAlways, true)
	if st := statusOf(initAlways, map[string][]dockerContainer{"init": {inst("i", 0, "exited", 1)}}, nil, true); st.Phase != v1.PodPending {
		t.Errorf("failed init, Always: %s", st.Phase)
	}
}

func TestStatusImagePullWaiting(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, false)
	st := statusOf(pod, nil, map[string]*v1.ContainerStateWaiting{"app": {Reason: "ErrImagePull", Message: "not found"}}, false)
	if w := st.ContainerStatuses[0].State.Waiting; st.Phase != v1.PodPending || w == nil || w.Reason != "ErrImagePull" || w.Message != "not found" {
		t.Errorf("%s %+v", st.Phase, st.ContainerStatuses[0].State)
	}
}

func TestStatusKeepsTransitionTimes(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, false)
	running := map[string][]dockerContainer{"app": {inst("a", 0, "running", 0)}}
	first := statusOf(pod, running, nil, true)
	old := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range first.Conditions {
		first.Conditions[i].LastTransitionTime = old
	}
	pod.Status = first
	second := statusOf(pod, running, nil, true)
	if !cond(second, v1.PodReady).LastTransitionTime.Time.Equal(old.Time) {
		t.Error("an unchanged condition keeps its transition time")
	}
	third := statusOf(pod, running, nil, false)
	if cond(third, v1.PodReady).LastTransitionTime.Time.Equal(old.Time) {
		t.Error("a changed condition gets a new transition time")
	}
}

func TestQOSClass(t *testing.T) {
	pod := testPod(v1.RestartPolicyAlways, false)
	if q := qosClass(pod); q != v1.PodQOSBestEffort {
		t.Errorf("no resources: %s", q)
	}
}
