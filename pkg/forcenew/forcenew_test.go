package forcenew

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
)

// unitStandIn plays systemd for one member: "start" runs the real etcd member with the environment
// the runtime drop-in (if present at that moment) gives it. The lab covers the real systemd.
func unitStandIn(t *testing.T, c *etcdtest.Cluster, m *etcdtest.Member, s *Spec, failStart bool) func(context.Context, ...string) error {
	return func(_ context.Context, args ...string) error {
		switch args[0] {
		case "daemon-reload":
			return nil
		case "stop":
			c.Stop(m)
			return nil
		case "restart":
			c.Stop(m)
		}
		if failStart {
			return errors.New("job failed")
		}
		delete(m.Extra, "force-new-cluster")
		if _, err := os.Stat(filepath.Join(s.dropInDir(), dropInName)); err == nil {
			env, _ := os.ReadFile(s.envFile())
			if strings.Contains(string(env), "ETCD_FORCE_NEW_CLUSTER=true") {
				m.Extra["force-new-cluster"] = "true"
			}
		}
		return c.Start(m)
	}
}

func threeStopped(t *testing.T) (*etcdtest.Cluster, *etcdtest.Member) {
	c := etcdtest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t).Put(ctx, "/kubernetes.io/kept", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		c.Stop(m)
	}
	return c, c.Members[0]
}

func TestForceNewClusterKeepsDataAndLeavesNoDropIn(t *testing.T) {
	c, m := threeStopped(t)
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 30 * time.Second}
	s.Systemctl = unitStandIn(t, c, m, &s, false)
	task := &module.Task{}
	r, err := Run(context.Background(), task, s)
	if err != nil || !task.IsChanged() {
		t.Fatalf("run: %v", err)
	}
	if r.Name != m.Name || len(r.PeerURLs) != 1 {
		t.Fatalf("result: %+v", r)
	}
	if _, ok := m.Extra["force-new-cluster"]; ok {
		t.Fatal("the member still runs with force-new-cluster after the normal restart")
	}
	if entries, _ := os.ReadDir(s.dropInDir()); len(entries) != 0 {
		t.Fatalf("drop-in dir not empty: %v", entries)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := c.Client(t, m)
	got, err := cli.Get(ctx, "/kubernetes.io/kept")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("data after force-new-cluster: %v %v", got, err)
	}
	again := &module.Task{}
	if _, err := Run(context.Background(), again, s); err != nil || again.IsChanged() {
		t.Fatalf("second run should change nothing: changed=%v %v", again.IsChanged(), err)
	}
}

func TestFailedStartRemovesDropIn(t *testing.T) {
	c, m := threeStopped(t)
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 5 * time.Second}
	s.Systemctl = unitStandIn(t, c, m, &s, true)
	_, err := Run(context.Background(), &module.Task{}, s)
	if err == nil || !strings.Contains(err.Error(), "journalctl -u etcd.service") {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(s.dropInDir()); len(entries) != 0 {
		t.Fatalf("drop-in lingers after a failed start: %v", entries)
	}
}

func TestLingeringDropInIsRemovedFirst(t *testing.T) {
	c, m := threeStopped(t)
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 30 * time.Second}
	s.Systemctl = unitStandIn(t, c, m, &s, false)
	if err := s.writeDropIn(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), &module.Task{}, s)
	if err != nil || !strings.Contains(strings.Join(r.Actions, ";"), "interrupted run") {
		t.Fatalf("run: %+v %v", r, err)
	}
}
