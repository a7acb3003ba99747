// Package hosted tests etcd hosted on Kubernetes (seed 002) in the k8s lab (lab/k8s, docs/hosted.md).
// `make test-hosted` runs it; it skips when `make k8s-binaries` has not built the lab.
package hosted

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab/k8s"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const keys = 200

// The lab boots, its hosted etcd serves TLS clients through etcd-client with three healthy voting
// members, seed 002's single-member recovery by hand (delete the member's PVC and pod) brings the
// member back with every key, and teardown leaves nothing behind.
func TestHostedEtcdLab(t *testing.T) {
	start := time.Now()
	l := k8s.Up(t, k8s.Spec{})
	t.Logf("cluster up in %s", time.Since(start).Round(100*time.Millisecond))
	ready := time.Now()
	if err := l.DeployHosted(); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd StatefulSet ready %s after the manifests were applied", time.Since(ready).Round(100*time.Millisecond))

	// The stand-ins the quorum-loss procedure drives: the HostedCluster's spec.pausedUntil and the API
	// server Deployments.
	if _, err := l.Kubectl("-n", k8s.ClusterNamespace, "patch", "hostedcluster/"+k8s.ClusterName, "--type=merge",
		"-p", `{"spec":{"pausedUntil":"true"}}`); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Kubectl("-n", k8s.ClusterNamespace, "get", "hostedcluster/"+k8s.ClusterName, "-o", "jsonpath={.spec.pausedUntil}"); err != nil || string(out) != "true" {
		t.Errorf("HostedCluster spec.pausedUntil = %q, %v; want true", out, err)
	}
	for _, d := range []string{"kube-apiserver", "openshift-apiserver", "openshift-oauth-apiserver"} {
		if _, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "rollout", "status", "deployment/"+d, "--timeout=60s"); err != nil {
			t.Errorf("API server stand-in: %v", err)
		}
	}

	o := l.EtcdConn()
	cli, err := o.V3()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < keys; i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("/lab/key-%03d", i), fmt.Sprintf("value-%d", i)); err != nil {
			t.Fatalf("put through etcd-client: %v", err)
		}
	}
	before := members(t, ctx, cli)
	assertHealthy(t, l, "etcd-0")

	// Seed 002, single node recovery: oc delete pvc/data-etcd-2 pod/etcd-2 --wait=false.
	old := podUID(t, l, "etcd-2")
	recover := time.Now()
	if _, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "delete", "pvc/data-etcd-2", "pod/etcd-2", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	if err := k8s.WaitUntil(3*time.Minute, "etcd-2 replaced by a new pod", func() error {
		uid, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "pod", "etcd-2", "-o", "jsonpath={.metadata.uid}")
		if err == nil && (len(uid) == 0 || string(uid) == old) {
			err = fmt.Errorf("etcd-2 is still pod %s", old)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEtcdReady(3, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd-2 back (new PVC, new member) %s after the delete", time.Since(recover).Round(100*time.Millisecond))
	after := members(t, ctx, cli)
	if after["etcd-2"] == before["etcd-2"] {
		t.Errorf("etcd-2 kept member ID %x: the reset-member init container did not re-add it", after["etcd-2"])
	}
	for _, n := range []string{"etcd-0", "etcd-1"} {
		if after[n] != before[n] {
			t.Errorf("%s changed member ID %x → %x", n, before[n], after[n])
		}
	}
	assertHealthy(t, l, "etcd-2")
	// Every key, read serializably from the new member itself: its own copy of the data.
	out, err := l.EtcdctlIn("etcd-2", "get", "/lab/", "--prefix", "--consistency=s", "--print-value-only")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	if len(got) != keys || got[0] != "value-0" {
		t.Fatalf("etcd-2 holds %d of %d keys after recovery (first %q)", len(got), keys, got[:min(1, len(got))])
	}

	cli.Close()
	down := time.Now()
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	t.Logf("teardown in %s", time.Since(down).Round(100*time.Millisecond))
	if left := l.Leftovers(); len(left) > 0 {
		t.Errorf("teardown left: %v", left)
	}
}

// members maps member names to IDs and checks there are three started voting members.
func members(t *testing.T, ctx context.Context, cli *clientv3.Client) map[string]uint64 {
	t.Helper()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, m := range resp.Members {
		if m.IsLearner || m.Name == "" {
			t.Errorf("member %x %q: learner=%v, started=%v; want a started voting member", m.ID, m.Name, m.IsLearner, m.Name != "")
		}
		out[m.Name] = m.ID
	}
	if len(out) != 3 || out["etcd-0"] == 0 || out["etcd-1"] == 0 || out["etcd-2"] == 0 {
		t.Fatalf("members %v; want etcd-0, etcd-1, etcd-2", out)
	}
	return out
}

func assertHealthy(t *testing.T, l *k8s.Lab, pod string) {
	t.Helper()
	healthy, unhealthy, err := l.ClusterHealth(pod)
	if err != nil || len(healthy) != 3 || len(unhealthy) > 0 {
		t.Fatalf("endpoint health --cluster from %s: healthy %v, unhealthy %v, %v", pod, healthy, unhealthy, err)
	}
}

func podUID(t *testing.T, l *k8s.Lab, pod string) string {
	t.Helper()
	uid, err := l.Kubectl("-n", k8s.ControlPlaneNamespace, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	return string(uid)
}
