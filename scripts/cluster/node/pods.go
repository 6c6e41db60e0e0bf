package main

// Pods bound to this node, each run by one worker goroutine that compares the pod spec with
// its Docker containers, acts, and writes the pod's status (the kubelet's pod worker and
// SyncPod: kubernetes pkg/kubelet/pod_workers.go, kuberuntime/kuberuntime_manager.go).

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

type nodeConfig struct {
	nodeName   string
	nodeIP     string
	network    string
	pauseImage string
	stateDir   string
	addHosts   []string
	mirrors    mirrors
	port       int
}

type podManager struct {
	cfg      *nodeConfig
	client   kubernetes.Interface
	images   *imageManager
	crash    *backoff
	services corelisters.ServiceLister
	recorder record.EventRecorder
	pods     corelisters.PodLister

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	ctx     context.Context
}

func newPodManager(ctx context.Context, cfg *nodeConfig, client kubernetes.Interface) *podManager {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &podManager{
		cfg: cfg, client: client, ctx: ctx,
		recorder: broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.nodeName}),
		images:   newImageManager(cfg.mirrors),
		crash:    newBackoff(10*time.Second, 5*time.Minute),
		workers:  map[types.UID]*podWorker{},
	}
}

// run watches this node's pods and Docker's container events until ctx ends.
func (m *podManager) run(ctx context.Context) error {
	podFactory := informers.NewSharedInformerFactoryWithOptions(m.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.cfg.nodeName).String()
		}))
	podInformer := podFactory.Core().V1().Pods()
	m.pods = podInformer.Lister()
	svcFactory := informers.NewSharedInformerFactory(m.client, 0)
	m.services = svcFactory.Core().V1().Services().Lister()
	_, _ = podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { m.podChanged(o.(*v1.Pod)) },
		UpdateFunc: func(_, o any) { m.podChanged(o.(*v1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				m.podGone(p.UID)
			}
		},
	})
	podFactory.Start(ctx.Done())
	svcFactory.Start(ctx.Done())
	podFactory.WaitForCacheSync(ctx.Done())
	svcFactory.WaitForCacheSync(ctx.Done())
	m.removeOrphans(ctx)
	go m.watchDocker(ctx)
	<-ctx.Done()
	return nil
}

func (m *podManager) podChanged(p *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workers[p.UID]
	if !ok {
		w = newPodWorker(m, p)
		m.workers[p.UID] = w
		go w.run()
	}
	w.update(p)
}

func (m *podManager) podGone(uid types.UID) {
	m.mu.Lock()
	w, ok := m.workers[uid]
	m.mu.Unlock()
	if ok {
		w.markGone()
		return
	}
	// Not ours to run any more: its containers go too.
	go removePodContainers(m.ctx, m.cfg, string(uid))
}

func (m *podManager) workerDone(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.workers, uid)
}

func (m *podManager) wake(uid string) {
	m.mu.Lock()
	w, ok := m.workers[types.UID(uid)]
	m.mu.Unlock()
	if ok {
		w.poke()
	}
}

// removeOrphans deletes containers and state of pods that no longer exist (adopting the others).
func (m *podManager) removeOrphans(ctx context.Context) {
	cs, err := docker.listContainers(ctx, labelNode+"="+m.cfg.nodeName)
	if err != nil {
		log.Printf("listing containers: %v", err)
		return
	}
	live := map[string]bool{}
	pods, _ := m.pods.List(everything())
	for _, p := range pods {
		live[string(p.UID)] = true
	}
	gone := map[string]bool{}
	for _, c := range cs {
		uid := c.Config.Labels[labelPodUID]
		if !live[uid] {
			gone[uid] = true
		}
	}
	if entries, err := os.ReadDir(filepath.Join(m.cfg.stateDir, "pods")); err == nil {
		for _, e := range entries {
			if !live[e.Name()] {
				gone[e.Name()] = true
			}
		}
	}
	for uid := range gone {
		log.Printf("removing containers of pod %s, which no longer exists", uid)
		removePodContainers(ctx, m.cfg, uid)
	}
}

// watchDocker wakes a pod's worker whenever one of its containers starts or dies.
func (m *podManager) watchDocker(ctx context.Context) {
	for ctx.Err() == nil {
		err := dockerEvents(ctx, m.cfg.nodeName, func(uid string) { m.wake(uid) })
		if ctx.Err() == nil {
			log.Printf("docker events ended (%v); restarting", err)
			time.Sleep(time.Second)
		}
	}
}

func removePodContainers(ctx context.Context, cfg *nodeConfig, uid string) {
	cs, _ := docker.listContainers(ctx, labelPodUID+"="+uid)
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	if err := docker.remove(ctx, ids...); err != nil {
		log.Printf("removing containers of pod %s: %v", uid, err)
	}
	_ = os.RemoveAll(filepath.Join(cfg.stateDir, "pods", uid))
}

// objects reads ConfigMaps and Secrets straight from the API server.
type apiObjects struct {
	ctx    context.Context
	client kubernetes.Interface
}

func (a apiObjects) configMap(ns, name string) (*v1.ConfigMap, error) {
	cm, err := a.client.CoreV1().ConfigMaps(ns).Get(a.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cm, err
}

func (a apiObjects) secret(ns, name string) (*v1.Secret, error) {
	s, err := a.client.CoreV1().Secrets(ns).Get(a.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// ---------------------------------------------------------------------------------------------

type podWorker struct {
	m    *podManager
	uid  types.UID
	wake chan struct{}

	mu   sync.Mutex
	pod  *v1.Pod
	gone bool

	vols           *volumeManager
	volErr         error
	volRefreshedAt time.Time
	startTime      *metav1.Time
	waiting        map[string]*v1.ContainerStateWaiting // this sync's reasons a container is not running
	nextWake       time.Time
	termMessages   map[string]string // docker ID -> termination message
	probes         *probeManager
	lastError      map[string]string // container -> last start failure logged
	lastWritten    *v1.PodStatus
	lastWrittenRV  string
}

func newPodWorker(m *podManager, p *v1.Pod) *podWorker {
	w := &podWorker{
		m: m, uid: p.UID, wake: make(chan struct{}, 1), pod: p,
		termMessages: map[string]string{},
		lastError:    map[string]string{},
	}
	w.vols = &volumeManager{client: m.client, objects: apiObjects{m.ctx, m.client}, root: w.dir()}
	w.probes = newProbeManager(w)
	return w
}

func (w *podWorker) dir() string { return filepath.Join(w.m.cfg.stateDir, "pods", string(w.uid)) }

func (w *podWorker) update(p *v1.Pod) {
	w.mu.Lock()
	w.pod = p
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) markGone() {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) current() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone
}

func (w *podWorker) run() {
	ctx := w.m.ctx
	defer w.m.workerDone(w.uid)
	defer w.probes.stopAll()
	for {
		done, err := w.sync(ctx)
		if err != nil {
			pod, _ := w.current()
			log.Printf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
		if done {
			return
		}
		delay := 10 * time.Second
		if err != nil {
			delay = 2 * time.Second
		}
		if !w.nextWake.IsZero() {
			if d := time.Until(w.nextWake); d < delay {
				delay = max(d, 100*time.Millisecond)
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (w *podWorker) wakeAt(t time.Time) {
	if w.nextWake.IsZero() || t.Before(w.nextWake) {
		w.nextWake = t
	}
}

// podContainers is a pod's Docker containers: its sandbox and each container's instances, newest first.
type podContainers struct {
	sandbox   *dockerContainer
	instances map[string][]dockerContainer
}

func (w *podWorker) observe(ctx context.Context) (*podContainers, error) {
	cs, err := docker.listContainers(ctx, labelPodUID+"="+string(w.uid))
	if err != nil {
		return nil, err
	}
	pc := &podContainers{instances: map[string][]dockerContainer{}}
	for i := range cs {
		c := cs[i]
		if c.Config.Labels[labelKind] == "sandbox" {
			if pc.sandbox == nil || c.Created.After(pc.sandbox.Created) {
				pc.sandbox = &c
			}
			continue
		}
		name := c.Config.Labels[labelContainer]
		pc.instances[name] = append(pc.instances[name], c)
	}
	for _, list := range pc.instances {
		sortNewestFirst(list)
	}
	return pc, nil
}

// sync does one round; done means the pod is finished with and the worker ends.
func (w *podWorker) sync(ctx context.Context) (bool, error) {
	pod, gone := w.current()
	w.nextWake = time.Time{}
	if gone {
		w.probes.stopAll()
		removePodContainers(ctx, w.m.cfg, string(w.uid))
		w.m.crash.forget(string(w.uid))
		w.m.images.backoff.forget(string(w.uid))
		return true, nil
	}
	if pod.DeletionTimestamp != nil {
		return w.terminate(ctx, pod)
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		// A finished pod keeps its exited containers (for logs) but not its sandbox.
		w.probes.stopAll()
		pc, err := w.observe(ctx)
		if err == nil {
			for _, list := range pc.instances {
				if len(list) > 0 && list[0].State.Running {
					_ = docker.stop(ctx, gracePeriod(pod), list[0].ID)
				}
			}
			if pc.sandbox != nil && pc.sandbox.State.Running {
				_ = docker.stop(ctx, 1, pc.sandbox.ID)
			}
		}
		return false, err
	}
	if w.startTime == nil {
		t := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		if pod.Status.StartTime != nil {
			t = *pod.Status.StartTime
		}
		w.startTime = &t
	}
	w.waiting = map[string]*v1.ContainerStateWaiting{}

	pc, err := w.observe(ctx)
	if err != nil {
		return false, err
	}
	podIP, err := w.ensureSandbox(ctx, pod, pc)
	if err != nil {
		w.writeStatus(ctx, pod, pc, "")
		return false, err
	}
	if w.volErr != nil || time.Since(w.volRefreshedAt) > time.Minute {
		w.volErr = w.vols.setUp(ctx, pod, w.m.cfg.nodeIP, podIP)
		if w.volErr == nil {
			w.volRefreshedAt = time.Now()
		}
	}
	if w.volErr != nil {
		w.m.recorder.Event(pod, v1.EventTypeWarning, "FailedMount", w.volErr.Error())
		w.writeStatus(ctx, pod, pc, podIP)
		return false, w.volErr
	}

	changed := false
	initDone := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		list := pc.instances[c.Name]
		if isSidecar(c) {
			if len(list) > 0 && list[0].State.Running {
				continue
			}
			initDone = false
			changed = w.startOrRestart(ctx, pod, c, "init", list, podIP, v1.ContainerRestartPolicyAlways) || changed
			break
		}
		if len(list) > 0 && list[0].ended() && list[0].State.ExitCode == 0 && !startFailed(&list[0]) {
			continue
		}
		initDone = false
		if len(list) > 0 && list[0].State.Running {
			break
		}
		if len(list) > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever && (list[0].ended() || startFailed(&list[0])) {
			break // the pod fails
		}
		changed = w.startOrRestart(ctx, pod, c, "init", list, podIP, v1.ContainerRestartPolicy(pod.Spec.RestartPolicy)) || changed
		break
	}
	if initDone {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			list := pc.instances[c.Name]
			if len(list) > 0 && list[0].State.Running {
				continue
			}
			if len(list) > 0 && (list[0].ended() || startFailed(&list[0])) {
				code := exitCodeOf(&list[0])
				switch pod.Spec.RestartPolicy {
				case v1.RestartPolicyNever:
					continue
				case v1.RestartPolicyOnFailure:
					if code == 0 {
						continue
					}
				}
			}
			changed = w.startOrRestart(ctx, pod, c, "app", list, podIP, v1.ContainerRestartPolicyAlways) || changed
		}
	}
	if changed {
		if pc, err = w.observe(ctx); err != nil {
			return false, err
		}
	}
	w.pruneInstances(ctx, pc)
	w.probes.track(pod, pc, podIP)
	return false, w.writeStatus(ctx, pod, pc, podIP)
}

func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// startFailed: docker created the container but could not start it (e.g. no such executable).
func startFailed(c *dockerContainer) bool {
	return c.State.Status == "created" && c.State.Error != ""
}

func exitCodeOf(c *dockerContainer) int {
	if startFailed(c) {
		return 128
	}
	return c.State.ExitCode
}

func gracePeriod(pod *v1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

func shortUID(uid types.UID) string {
	s := strings.ReplaceAll(string(uid), "-", "")
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

func (w *podWorker) baseLabels(pod *v1.Pod, kind, container string) []string {
	labels := []string{
		labelNode + "=" + w.m.cfg.nodeName,
		labelPodUID + "=" + string(pod.UID),
		labelPodName + "=" + pod.Name,
		labelPodNS + "=" + pod.Namespace,
		labelKind + "=" + kind,
	}
	if container != "" {
		labels = append(labels, labelContainer+"="+container)
	}
	var args []string
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	return args
}

// ensureSandbox starts the pod's sandbox if needed and returns the pod IP.
func (w *podWorker) ensureSandbox(ctx context.Context, pod *v1.Pod, pc *podContainers) (string, error) {
	cfg := w.m.cfg
	if pc.sandbox == nil {
		args := []string{"run", "-d", "--pull", "never",
			"--name", fmt.Sprintf("k8s_POD_%s_%s_%s", pod.Namespace, pod.Name, shortUID(pod.UID))}
		args = append(args, w.baseLabels(pod, "sandbox", "")...)
		if pod.Spec.HostNetwork {
			args = append(args, "--network", "host")
		} else {
			hostname := pod.Name
			if pod.Spec.Hostname != "" {
				hostname = pod.Spec.Hostname
			}
			if len(hostname) > 63 {
				hostname = hostname[:63]
			}
			args = append(args, "--network", cfg.network, "--hostname", hostname)
			for _, h := range cfg.addHosts {
				args = append(args, "--add-host", h)
			}
			for _, ha := range pod.Spec.HostAliases {
				for _, n := range ha.Hostnames {
					args = append(args, "--add-host", n+":"+ha.IP)
				}
			}
			if sc := pod.Spec.SecurityContext; sc != nil {
				for _, s := range sc.Sysctls {
					args = append(args, "--sysctl", s.Name+"="+s.Value)
				}
			}
		}
		args = append(args, cfg.pauseImage)
		if _, err := docker.run(ctx, args...); err != nil {
			w.setAllWaiting(pod, "ContainerCreating", "")
			return "", fmt.Errorf("creating the pod sandbox: %v", err)
		}
		fresh, err := w.observe(ctx)
		if err != nil {
			return "", err
		}
		*pc = *fresh
		if pc.sandbox == nil {
			return "", fmt.Errorf("the pod sandbox vanished")
		}
	} else if !pc.sandbox.State.Running {
		// The sandbox died (e.g. Docker restarted): the kubelet starts a new one and every
		// container with it; here the same sandbox is started again.
		for _, list := range pc.instances {
			if len(list) > 0 && list[0].State.Running {
				_ = docker.stop(ctx, 0, list[0].ID)
			}
		}
		if _, err := docker.run(ctx, "start", pc.sandbox.ID); err != nil {
			return "", fmt.Errorf("restarting the pod sandbox: %v", err)
		}
		fresh, err := w.observe(ctx)
		if err != nil {
			return "", err
		}
		*pc = *fresh
	}
	if pod.Spec.HostNetwork {
		return cfg.nodeIP, nil
	}
	if n, ok := pc.sandbox.NetworkSettings.Networks[cfg.network]; ok && n.IPAddress != "" {
		return n.IPAddress, nil
	}
	return "", fmt.Errorf("the pod sandbox has no address on network %s", cfg.network)
}

func (w *podWorker) setAllWaiting(pod *v1.Pod, reason, message string) {
	for _, c := range pod.Spec.InitContainers {
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: reason, Message: message}
	}
	for _, c := range pod.Spec.Containers {
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: reason, Message: message}
	}
}

// startOrRestart starts container c (a new instance after list[0]) unless its crash back-off
// says wait; reports whether a container was created.
func (w *podWorker) startOrRestart(ctx context.Context, pod *v1.Pod, c *v1.Container, kind string, list []dockerContainer, podIP string, _ v1.ContainerRestartPolicy) bool {
	attempt := 0
	if len(list) > 0 {
		prev := &list[0]
		attempt = prev.attempt() + 1
		if prev.ended() || startFailed(prev) {
			key := string(pod.UID) + "/" + c.Name
			finished := prev.State.FinishedAt
			if finished.IsZero() || finished.Year() < 2000 {
				finished = prev.Created
			}
			if w.m.crash.inBackoffSince(key, finished) {
				delay := w.m.crash.get(key)
				w.waiting[c.Name] = &v1.ContainerStateWaiting{
					Reason:  "CrashLoopBackOff",
					Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, pod.Name, pod.Namespace, pod.UID),
				}
				w.wakeAt(finished.Add(delay))
				w.m.recorder.Eventf(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
				return false
			}
			w.m.crash.next(key, finished)
		} else if prev.State.Status == "created" {
			// Created but never started (the node stopped in between): replace it.
			_ = docker.remove(ctx, prev.ID)
			attempt = prev.attempt()
		}
	}
	if err := w.startContainer(ctx, pod, c, kind, attempt, podIP); err != nil {
		// Once per distinct failure: a pull back-off repeats the same one every sync.
		if msg := err.Error(); w.lastError[c.Name] != msg && !strings.HasPrefix(msg, "ImagePullBackOff") {
			log.Printf("pod %s/%s container %s: %v", pod.Namespace, pod.Name, c.Name, err)
			w.lastError[c.Name] = msg
		}
		return true
	}
	delete(w.lastError, c.Name)
	return true
}

// startContainer pulls the image and runs one instance of c joined to the sandbox.
func (w *podWorker) startContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, kind string, attempt int, podIP string) error {
	event := func(t, reason, msg string) { w.m.recorder.Event(pod, t, reason, msg) }
	img, err := w.m.images.ensure(ctx, string(pod.UID), c, event)
	if err != nil {
		var msg, reason string
		if pe, ok := err.(*pullError); ok {
			reason, msg = pe.reason, pe.message
			if reason == "ImagePullBackOff" {
				w.wakeAt(w.m.images.backoff.until(string(pod.UID) + "_" + c.Image))
			} else if reason == "ErrImagePull" {
				w.wakeAt(time.Now().Add(w.m.images.backoff.get(string(pod.UID) + "_" + c.Image)))
			}
		} else {
			reason, msg = "ErrImagePull", err.Error()
		}
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: reason, Message: msg}
		event(v1.EventTypeWarning, "Failed", "Error: "+reason)
		return err
	}
	args, err := w.containerArgs(pod, c, kind, attempt, podIP, img)
	if err != nil {
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}
		event(v1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return err
	}
	if _, err := docker.run(ctx, args...); err != nil {
		// A created container that did not start is reported from its docker state (StartError).
		w.waiting[c.Name] = &v1.ContainerStateWaiting{Reason: "RunContainerError", Message: err.Error()}
		event(v1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return err
	}
	event(v1.EventTypeNormal, "Created", "Created container: "+c.Name)
	event(v1.EventTypeNormal, "Started", "Started container "+c.Name)
	delete(w.waiting, c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		w.runHook(ctx, pod, c, containerName(pod, c.Name, attempt), podIP, c.Lifecycle.PostStart, 2*time.Minute)
	}
	return nil
}

func containerName(pod *v1.Pod, name string, attempt int) string {
	return fmt.Sprintf("k8s_%s_%s_%s_%s_%d", name, pod.Namespace, pod.Name, shortUID(pod.UID), attempt)
}

func (w *podWorker) terminationLogPath(c *v1.Container, attempt int) string {
	return filepath.Join(w.dir(), "containers", c.Name, strconv.Itoa(attempt), "termination-log")
}

// containerArgs is the `docker run` command line of one container instance.
func (w *podWorker) containerArgs(pod *v1.Pod, c *v1.Container, kind string, attempt int, podIP string, img *pulledImage) ([]string, error) {
	cfg := w.m.cfg
	args := []string{"run", "-d", "--pull", "never", "--name", containerName(pod, c.Name, attempt)}
	args = append(args, w.baseLabels(pod, kind, c.Name)...)
	args = append(args,
		"--label", labelAttempt+"="+strconv.Itoa(attempt),
		"--label", labelImage+"="+c.Image,
		"--label", labelImageID+"="+img.imageID)
	if pod.Spec.HostNetwork {
		args = append(args, "--network", "host")
	} else {
		sandbox := fmt.Sprintf("k8s_POD_%s_%s_%s", pod.Namespace, pod.Name, shortUID(pod.UID))
		args = append(args, "--network", "container:"+sandbox)
		if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
			args = append(args, "--pid", "container:"+sandbox)
		}
	}
	// Environment.
	pec := &podEnvContext{pod: pod, podIP: podIP, hostIP: cfg.nodeIP, objects: apiObjects{w.m.ctx, w.m.client}}
	pec.services = w.serviceLinks(pod)
	env, err := containerEnv(pec, c)
	if err != nil {
		return nil, err
	}
	envMap := map[string]string{}
	for _, e := range env {
		args = append(args, "-e", e.Name+"="+e.Value)
		envMap[e.Name] = e.Value
	}
	lookup := func(n string) (string, bool) { v, ok := envMap[n]; return v, ok }
	// Security.
	sc := c.SecurityContext
	psc := pod.Spec.SecurityContext
	var uid, gid *int64
	if psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
		for _, g := range psc.SupplementalGroups {
			args = append(args, "--group-add", strconv.FormatInt(g, 10))
		}
		if psc.FSGroup != nil {
			args = append(args, "--group-add", strconv.FormatInt(*psc.FSGroup, 10))
		}
	}
	if sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.Capabilities != nil {
			for _, a := range sc.Capabilities.Add {
				args = append(args, "--cap-add", string(a))
			}
			for _, d := range sc.Capabilities.Drop {
				args = append(args, "--cap-drop", string(d))
			}
		}
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			args = append(args, "--read-only")
		}
		if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			args = append(args, "--security-opt", "no-new-privileges")
		}
		if sc.Privileged != nil && *sc.Privileged {
			args = append(args, "--privileged")
		}
	}
	if uid != nil {
		u := strconv.FormatInt(*uid, 10)
		if gid != nil {
			u += ":" + strconv.FormatInt(*gid, 10)
		}
		args = append(args, "--user", u)
	}
	// Resources.
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok && q.Value() > 0 {
		mem := q.Value()
		if mem < 6*1024*1024 {
			mem = 6 * 1024 * 1024 // docker's minimum
		}
		args = append(args, "--memory", strconv.FormatInt(mem, 10))
	}
	if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok && q.MilliValue() > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(float64(q.MilliValue())/1000, 'f', 3, 64))
	}
	// Volumes and the termination log.
	mounts, err := w.vols.mountArgs(pod, c)
	if err != nil {
		return nil, err
	}
	args = append(args, mounts...)
	tl := w.terminationLogPath(c, attempt)
	if err := os.MkdirAll(filepath.Dir(tl), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(tl, nil, 0o666); err != nil {
		return nil, err
	}
	_ = os.Chmod(tl, 0o666)
	tmp := c.TerminationMessagePath
	if tmp == "" {
		tmp = "/dev/termination-log"
	}
	args = append(args, "--mount", "type=bind,source="+tl+",target="+tmp)
	if c.WorkingDir != "" {
		args = append(args, "-w", c.WorkingDir)
	}
	if c.Stdin {
		args = append(args, "-i")
	}
	if c.TTY {
		args = append(args, "-t")
	}
	// Command and args ($(VAR) expanded as the kubelet does).
	var rest []string
	if len(c.Command) > 0 {
		args = append(args, "--entrypoint", expand(c.Command[0], lookup))
		for _, s := range c.Command[1:] {
			rest = append(rest, expand(s, lookup))
		}
	}
	for _, s := range c.Args {
		rest = append(rest, expand(s, lookup))
	}
	args = append(args, img.runRef)
	args = append(args, rest...)
	return args, nil
}

// serviceLinks: the kubernetes service's variables always, the namespace's services when enabled.
func (w *podWorker) serviceLinks(pod *v1.Pod) []envVar {
	if w.m.services == nil {
		return nil
	}
	var svcs []*v1.Service
	seen := map[string]bool{}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, _ := w.m.services.Services(pod.Namespace).List(everything())
		for _, s := range list {
			svcs = append(svcs, s)
			seen[s.Name] = true
		}
	}
	if k, err := w.m.services.Services("default").Get("kubernetes"); err == nil && !(pod.Namespace == "default" && seen["kubernetes"]) {
		svcs = append(svcs, k)
	}
	return serviceEnv(svcs)
}

// pruneInstances keeps the newest two instances of each container (current and previous).
func (w *podWorker) pruneInstances(ctx context.Context, pc *podContainers) {
	for name, list := range pc.instances {
		if len(list) <= 2 {
			continue
		}
		var ids []string
		for _, c := range list[2:] {
			if !c.State.Running {
				ids = append(ids, c.ID)
			}
		}
		_ = docker.remove(ctx, ids...)
		pc.instances[name] = list[:2]
	}
}

// terminate stops the pod's containers within its grace period, removes them, and deletes
// the pod object (kubelet: killPod, then the status manager's final delete with the UID precondition).
func (w *podWorker) terminate(ctx context.Context, pod *v1.Pod) (bool, error) {
	w.probes.stopAll()
	grace := gracePeriod(pod)
	deadline := time.Now().Add(time.Duration(grace) * time.Second)
	pc, err := w.observe(ctx)
	if err != nil {
		return false, err
	}
	podIP := ""
	if pc.sandbox != nil {
		if n, ok := pc.sandbox.NetworkSettings.Networks[w.m.cfg.network]; ok {
			podIP = n.IPAddress
		}
	}
	var wg sync.WaitGroup
	stopAll := func(specs []v1.Container) {
		for i := range specs {
			c := &specs[i]
			list := pc.instances[c.Name]
			if len(list) == 0 || !list[0].State.Running {
				continue
			}
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				w.m.recorder.Eventf(pod, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
					w.runHook(ctx, pod, c, id, podIP, c.Lifecycle.PreStop, time.Until(deadline))
				}
				left := int64(time.Until(deadline).Seconds())
				if left < 2 && grace > 0 {
					left = 2 // the kubelet gives at least this after a preStop hook
				}
				_ = docker.stop(ctx, left, id)
			}(list[0].ID)
		}
	}
	stopAll(pod.Spec.Containers)
	wg.Wait()
	stopAll(pod.Spec.InitContainers) // sidecars stop after the app containers
	wg.Wait()
	removePodContainers(ctx, w.m.cfg, string(pod.UID))
	w.m.crash.forget(string(pod.UID))
	w.m.images.backoff.forget(string(pod.UID))
	zero := int64(0)
	err = w.m.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("deleting the pod: %v", err)
	}
	return true, nil
}

func everything() labels.Selector { return labels.Everything() }

func sortNewestFirst(list []dockerContainer) {
	sort.Slice(list, func(i, j int) bool { return list[i].attempt() > list[j].attempt() })
}
