package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Up creates the k8s lab for one test and tears it down with t.Cleanup. It skips (naming the make
// target) when the binaries are not built, and without root.
func Up(t testing.TB, spec Spec) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the k8s lab needs root (network namespace, containerd, kubelet)")
	}
	if m := spec.Missing(); len(m) > 0 {
		t.Skipf("k8s lab binaries not built (%s missing): run `make k8s-binaries` (10–26 min cold)", m[0])
	}
	l, err := Create(spec, t.Logf)
	if err == nil {
		t.Cleanup(func() {
			if err := l.Destroy(); err != nil {
				t.Errorf("k8s lab teardown: %v", err)
			}
		})
		return l
	}
	t.Fatal(err)
	return nil
}

// EtcdctlIn runs etcdctl in a member's etcd container with the client certificate, as seed 002's
// "Checking cluster health" does (oc rsh … etcd-0).
func (l *Lab) EtcdctlIn(pod string, args ...string) ([]byte, error) {
	base := []string{"-n", ControlPlaneNamespace, "exec", pod, "-c", "etcd", "--", "/usr/bin/etcdctl",
		"--cacert=/etc/etcd/tls/etcd-ca/ca.crt", "--cert=/etc/etcd/tls/client/etcd-client.crt",
		"--key=/etc/etcd/tls/client/etcd-client.key", "--endpoints=https://localhost:2379"}
	return l.Kubectl(append(base, args...)...)
}

// ClusterHealth runs `etcdctl endpoint health --cluster` in a member and returns the endpoints that
// answered healthy and those that did not.
func (l *Lab) ClusterHealth(pod string) (healthy, unhealthy []string, err error) {
	out, err := l.EtcdctlIn(pod, "endpoint", "health", "--cluster", "-w", "json")
	var res []struct {
		Endpoint string `json:"endpoint"`
		Health   bool   `json:"health"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return nil, nil, fmt.Errorf("endpoint health: %v (%v): %s", err, jerr, strings.TrimSpace(string(out)))
	}
	for _, r := range res {
		if r.Health {
			healthy = append(healthy, r.Endpoint)
		} else {
			unhealthy = append(unhealthy, r.Endpoint)
		}
	}
	return healthy, unhealthy, nil
}
