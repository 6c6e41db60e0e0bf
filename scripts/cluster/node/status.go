package main

// Pod status as the kubelet computes it (kubernetes pkg/kubelet/kubelet_pods.go getPhase,
// generateAPIPodStatus; pkg/kubelet/status/generate.go for the conditions).

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type statusInput struct {
	pod          *v1.Pod
	pc           *podContainers
	podIP        string
	hostIP       string
	waiting      map[string]*v1.ContainerStateWaiting
	probe        func(id string) (ready, started bool)
	termMessage  func(c *v1.Container, inst *dockerContainer) string
	startTime    *metav1.Time
	sandboxReady bool
	now          time.Time
}

func apiTime(t time.Time) metav1.Time {
	if t.IsZero() || t.Year() < 2000 {
		return metav1.Time{}
	}
	return metav1.NewTime(t.UTC().Truncate(time.Second))
}

func terminatedState(c *v1.Container, inst *dockerContainer, msg func(*v1.Container, *dockerContainer) string) *v1.ContainerStateTerminated {
	t := &v1.ContainerStateTerminated{
		ExitCode:    int32(exitCodeOf(inst)),
		StartedAt:   apiTime(inst.State.StartedAt),
		FinishedAt:  apiTime(inst.State.FinishedAt),
		ContainerID: "docker://" + inst.ID,
	}
	switch {
	case startFailed(inst):
		t.Reason = "StartError"
		t.Message = inst.State.Error
		t.FinishedAt = apiTime(inst.Created)
		t.StartedAt = metav1.NewTime(time.Unix(0, 0).UTC())
	case inst.State.OOMKilled:
		t.Reason = "OOMKilled"
	case t.ExitCode == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	if msg != nil && t.Message == "" {
		t.Message = msg(c, inst)
	}
	return t
}

func containerStatus(in *statusInput, c *v1.Container, isInit bool, defaultWaiting string) v1.ContainerStatus {
	st := v1.ContainerStatus{Name: c.Name, Image: c.Image}
	f := false
	st.Started = &f
	list := in.pc.instances[c.Name]
	waiting := in.waiting[c.Name]
	if len(list) == 0 {
		if waiting == nil {
			waiting = &v1.ContainerStateWaiting{Reason: defaultWaiting}
		}
		st.State.Waiting = waiting
		return st
	}
	cur := &list[0]
	st.RestartCount = int32(cur.attempt())
	st.ContainerID = "docker://" + cur.ID
	st.ImageID = cur.Config.Labels[labelImageID]
	var prev *dockerContainer
	if len(list) > 1 {
		prev = &list[1]
	}
	switch {
	case cur.State.Running:
		st.State.Running = &v1.ContainerStateRunning{StartedAt: apiTime(cur.State.StartedAt)}
		ready, started := in.probe(cur.ID)
		st.Ready, st.Started = ready, &started
		if prev != nil && (prev.ended() || startFailed(prev)) {
			st.LastTerminationState.Terminated = terminatedState(c, prev, in.termMessage)
		}
	case cur.ended() || startFailed(cur):
		term := terminatedState(c, cur, in.termMessage)
		if waiting != nil {
			st.State.Waiting = waiting
			st.LastTerminationState.Terminated = term
		} else {
			st.State.Terminated = term
			if prev != nil && (prev.ended() || startFailed(prev)) {
				st.LastTerminationState.Terminated = terminatedState(c, prev, in.termMessage)
			}
			if isInit && term.ExitCode == 0 {
				st.Ready = true
			}
		}
	default:
		if waiting == nil {
			waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		st.State.Waiting = waiting
	}
	return st
}

// podPhase mirrors the kubelet's getPhase.
func podPhase(pod *v1.Pod, initStatuses, statuses []v1.ContainerStatus) v1.PodPhase {
	pendingInit, failedInit := 0, 0
	for i, s := range initStatuses {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			if s.State.Running == nil || s.Started == nil || !*s.Started {
				pendingInit++
			}
			continue
		}
		switch {
		case s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if s.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			} else {
				pendingInit++
			}
		}
	}
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for _, s := range statuses {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
		return v1.PodFailed
	}
	switch {
	case pendingInit > 0 || failedInit > 0:
		return v1.PodPending
	case waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if pod.Spec.RestartPolicy == v1.RestartPolicyAlways {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning
	}
	return v1.PodPending
}

func condition(t v1.PodConditionType, ok bool, reason, message string) v1.PodCondition {
	c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason, Message: message}
	if ok {
		c.Status, c.Reason, c.Message = v1.ConditionTrue, "", ""
	}
	return c
}

// computeStatus is the pod's status from what Docker and the probes show.
func computeStatus(in *statusInput) v1.PodStatus {
	pod := in.pod
	old := pod.Status
	st := v1.PodStatus{
		HostIP:             in.hostIP,
		StartTime:          in.startTime,
		QOSClass:           old.QOSClass,
		ObservedGeneration: pod.Generation,
	}
	if st.QOSClass == "" {
		st.QOSClass = qosClass(pod)
	}
	if in.hostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: in.hostIP}}
	}
	if in.podIP != "" {
		st.PodIP = in.podIP
		st.PodIPs = []v1.PodIP{{IP: in.podIP}}
	}
	defaultWaiting := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		defaultWaiting = "PodInitializing"
	}
	for i := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, containerStatus(in, &pod.Spec.InitContainers[i], true, defaultWaiting))
	}
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(in, &pod.Spec.Containers[i], false, defaultWaiting))
	}
	st.Phase = podPhase(pod, st.InitContainerStatuses, st.ContainerStatuses)

	var notInit, notReady []string
	for i, s := range st.InitContainerStatuses {
		c := &pod.Spec.InitContainers[i]
		done := (s.State.Terminated != nil && s.State.Terminated.ExitCode == 0) ||
			(isSidecar(c) && s.Started != nil && *s.Started)
		if !done {
			notInit = append(notInit, s.Name)
		}
		if isSidecar(c) && !s.Ready {
			notReady = append(notReady, s.Name)
		}
	}
	for _, s := range st.ContainerStatuses {
		if !s.Ready {
			notReady = append(notReady, s.Name)
		}
	}
	initialized := condition(v1.PodInitialized, len(notInit) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	ready := condition(v1.ContainersReady, len(notReady) == 0, "ContainersNotReady",
		fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	podReady := condition(v1.PodReady, len(notReady) == 0, "ContainersNotReady", ready.Message)
	if st.Phase == v1.PodSucceeded {
		ready = condition(v1.ContainersReady, false, "PodCompleted", "")
		podReady = condition(v1.PodReady, false, "PodCompleted", "")
	}
	if len(notReady) == 0 {
		for _, g := range pod.Spec.ReadinessGates {
			ok := false
			for _, c := range old.Conditions {
				if c.Type == g.ConditionType && c.Status == v1.ConditionTrue {
					ok = true
				}
			}
			if !ok {
				podReady = condition(v1.PodReady, false, "ReadinessGatesNotReady",
					fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
			}
		}
	}
	conds := []v1.PodCondition{
		condition(v1.PodReadyToStartContainers, in.sandboxReady, "", ""),
		initialized, podReady, ready,
		condition(v1.PodScheduled, true, "", ""),
	}
	// Conditions others own (scheduler, readiness gates, disruption) stay as they are.
	ours := map[v1.PodConditionType]bool{}
	for _, c := range conds {
		ours[c.Type] = true
	}
	for i := range conds {
		conds[i].LastTransitionTime = apiTime(in.now)
		for _, o := range old.Conditions {
			if o.Type == conds[i].Type {
				if o.Status == conds[i].Status {
					conds[i].LastTransitionTime = o.LastTransitionTime
				}
				conds[i].ObservedGeneration = pod.Generation
				if conds[i].Type == v1.PodScheduled {
					conds[i] = o
				}
			}
		}
		if conds[i].ObservedGeneration == 0 {
			conds[i].ObservedGeneration = pod.Generation
		}
	}
	for _, o := range old.Conditions {
		if !ours[o.Type] {
			conds = append(conds, o)
		}
	}
	st.Conditions = conds
	return st
}

// qosClass: BestEffort without requests and limits, Guaranteed when every container's limits
// equal its requests for cpu and memory, Burstable otherwise (kubernetes pkg/apis/core/v1/helper/qos).
func qosClass(pod *v1.Pod) v1.PodQOSClass {
	any, guaranteed := false, true
	all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

// termMessage reads the termination log of an ended instance once, falling back to its log's
// tail when the policy says so (kubelet: kuberuntime_container.go).
func (w *podWorker) termMessage(c *v1.Container, inst *dockerContainer) string {
	if m, ok := w.termMessages[inst.ID]; ok {
		return m
	}
	path := w.terminationLogPath(c, inst.attempt())
	data, _ := os.ReadFile(path)
	if len(data) > 4096 {
		data = data[:4096]
	}
	msg := string(data)
	if msg == "" && c.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError && exitCodeOf(inst) != 0 {
		msg = docker.lastLogBytes(context.Background(), inst.ID, 80, 2048)
	}
	w.termMessages[inst.ID] = msg
	return msg
}

// writeStatus writes the computed status when it differs from the pod's.
func (w *podWorker) writeStatus(ctx context.Context, pod *v1.Pod, pc *podContainers, podIP string) error {
	in := &statusInput{
		pod: pod, pc: pc, podIP: podIP, hostIP: w.m.cfg.nodeIP, waiting: w.waiting,
		probe: w.probes.result, termMessage: w.termMessage, startTime: w.startTime,
		sandboxReady: podIP != "" && pc.sandbox != nil && pc.sandbox.State.Running, now: time.Now(),
	}
	st := computeStatus(in)
	if apiequality.Semantic.DeepEqual(normalized(pod.Status), normalized(st)) {
		return nil
	}
	// The API server may drop a field it does not know; what was written last, unchanged since, stays.
	if w.lastWritten != nil && pod.ResourceVersion == w.lastWrittenRV && apiequality.Semantic.DeepEqual(normalized(*w.lastWritten), normalized(st)) {
		return nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		p := pod.DeepCopy()
		p.Status = st
		written, err := w.m.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err == nil {
			w.lastWritten, w.lastWrittenRV = &st, written.ResourceVersion
			return nil
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("writing the pod status: %v", err)
		}
		fresh, gerr := w.m.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr != nil || fresh.UID != pod.UID {
			return nil
		}
		if fresh.DeletionTimestamp != nil {
			w.update(fresh)
			return nil
		}
		pod = fresh
		in.pod = fresh
		st = computeStatus(in)
	}
	return fmt.Errorf("writing the pod status: conflicts")
}

// normalized is a status with times at the API's second precision, for comparing.
func normalized(s v1.PodStatus) v1.PodStatus {
	s = *s.DeepCopy()
	fix := func(t *metav1.Time) {
		if !t.IsZero() {
			*t = metav1.NewTime(t.UTC().Truncate(time.Second))
		}
	}
	for i := range s.Conditions {
		fix(&s.Conditions[i].LastTransitionTime)
		fix(&s.Conditions[i].LastProbeTime)
	}
	if s.StartTime != nil {
		fix(s.StartTime)
	}
	for _, list := range [][]v1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for i := range list {
			for _, cs := range []*v1.ContainerState{&list[i].State, &list[i].LastTerminationState} {
				if cs.Running != nil {
					fix(&cs.Running.StartedAt)
				}
				if cs.Terminated != nil {
					fix(&cs.Terminated.StartedAt)
					fix(&cs.Terminated.FinishedAt)
				}
			}
		}
	}
	sort.SliceStable(s.Conditions, func(i, j int) bool { return s.Conditions[i].Type < s.Conditions[j].Type })
	return s
}
