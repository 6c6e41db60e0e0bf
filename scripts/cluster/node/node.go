package main

// The Node object and its Lease (kubernetes pkg/kubelet/kubelet_node_status.go,
// pkg/kubelet/nodelease): registered at start, the lease renewed every 10 s, the status every 60 s.

import (
	"context"
	"log"
	"os"
	"runtime"
	"strings"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	nodeCPU         = "8"
	nodeMemory      = "32Gi"
	nodePods        = "110"
	nodeStorage     = "100Gi"
	kubeletVersion  = "v1.35.4"
	leaseDuration   = 40
	leaseRenewEvery = 10 * time.Second
	statusEvery     = 60 * time.Second
)

type nodeAgent struct {
	cfg           *nodeConfig
	client        kubernetes.Interface
	dockerVersion string
}

func osImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"`)
			}
		}
	}
	return "Linux"
}

func kernelVersion() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func (n *nodeAgent) status(now metav1.Time) v1.NodeStatus {
	res := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse(nodeCPU),
		v1.ResourceMemory:           resource.MustParse(nodeMemory),
		v1.ResourcePods:             resource.MustParse(nodePods),
		v1.ResourceEphemeralStorage: resource.MustParse(nodeStorage),
	}
	hostname := n.cfg.nodeName
	cond := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		return v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return v1.NodeStatus{
		Capacity:    res,
		Allocatable: res.DeepCopy(),
		Phase:       v1.NodeRunning,
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: n.cfg.nodeIP},
			{Type: v1.NodeHostName, Address: hostname},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(n.cfg.port)}},
		NodeInfo: v1.NodeSystemInfo{
			KubeletVersion:          kubeletVersion,
			ContainerRuntimeVersion: "docker://" + n.dockerVersion,
			OSImage:                 osImage(),
			KernelVersion:           kernelVersion(),
			Architecture:            runtime.GOARCH,
			OperatingSystem:         "linux",
			MachineID:               "fnctl-test-node",
			SystemUUID:              "fnctl-test-node",
			BootID:                  "fnctl-test-node",
		},
		Conditions: []v1.NodeCondition{
			cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
	}
}

// register creates the Node or refreshes an existing one's status; it keeps trying until it works.
func (n *nodeAgent) register(ctx context.Context) (*v1.Node, error) {
	for {
		node, err := n.registerOnce(ctx)
		if err == nil {
			return node, nil
		}
		log.Printf("registering node %s: %v", n.cfg.nodeName, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (n *nodeAgent) registerOnce(ctx context.Context) (*v1.Node, error) {
	nodes := n.client.CoreV1().Nodes()
	now := metav1.Now()
	want := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.cfg.nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname":  n.cfg.nodeName,
				"kubernetes.io/os":        "linux",
				"kubernetes.io/arch":      runtime.GOARCH,
				"beta.kubernetes.io/os":   "linux",
				"beta.kubernetes.io/arch": runtime.GOARCH,
				"type":                    "fnctl-test-node",
			},
		},
		Status: n.status(now),
	}
	node, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		node, err = nodes.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		changed := false
		for k, v := range want.Labels {
			if node.Labels[k] != v {
				if node.Labels == nil {
					node.Labels = map[string]string{}
				}
				node.Labels[k] = v
				changed = true
			}
		}
		if changed {
			if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
				return nil, err
			}
		}
		return n.updateStatus(ctx, node)
	}
	if err != nil {
		return nil, err
	}
	// Create ignores status: write it through the subresource.
	return n.updateStatus(ctx, node)
}

func (n *nodeAgent) updateStatus(ctx context.Context, node *v1.Node) (*v1.Node, error) {
	now := metav1.Now()
	st := n.status(now)
	// Keep transition times of conditions whose status did not change.
	for i := range st.Conditions {
		for _, o := range node.Status.Conditions {
			if o.Type == st.Conditions[i].Type && o.Status == st.Conditions[i].Status && !o.LastTransitionTime.IsZero() {
				st.Conditions[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	node = node.DeepCopy()
	node.Status = st
	return n.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
}

// run keeps the lease and the node status fresh until ctx ends.
func (n *nodeAgent) run(ctx context.Context, node *v1.Node) {
	leaseTicker := time.NewTicker(leaseRenewEvery)
	statusTicker := time.NewTicker(statusEvery)
	defer leaseTicker.Stop()
	defer statusTicker.Stop()
	n.renewLease(ctx, node)
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTicker.C:
			n.renewLease(ctx, node)
		case <-statusTicker.C:
			cur, err := n.client.CoreV1().Nodes().Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				cur, err = n.registerOnce(ctx)
			} else if err == nil {
				cur, err = n.updateStatus(ctx, cur)
			}
			if err != nil {
				log.Printf("node status: %v", err)
			} else {
				node = cur
			}
		}
	}
}

func (n *nodeAgent) renewLease(ctx context.Context, node *v1.Node) {
	leases := n.client.CoordinationV1().Leases("kube-node-lease")
	now := metav1.NewMicroTime(time.Now())
	holder := n.cfg.nodeName
	dur := int32(leaseDuration)
	lease, err := leases.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: n.cfg.nodeName, Namespace: "kube-node-lease",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
			},
			Spec: coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	} else if err == nil {
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &dur, &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil && ctx.Err() == nil {
		log.Printf("renewing the node lease: %v", err)
	}
}
