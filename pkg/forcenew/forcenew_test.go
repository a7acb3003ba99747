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

// unitStandIn plays systemd for one member: Start runs the real etcd member with the environment
// the runtime drop-in (if present at that moment) gives it. The lab covers the real systemd.
type unitStandIn struct {
	c         *etcdtest.Cluster
	m         *etcdtest.Member
	s         *Spec
	failStart bool
}

func (u *unitStandIn) DaemonReload(context.Context) error { return nil }
func (u *unitStandIn) Active(context.Context, string) (bool, error) {
	return false, errors.New("not used by forcenew")
}
func (u *unitStandIn) Stop(context.Context, string) error { u.c.Stop(u.m); return nil }
func (u *unitStandIn) Restart(ctx context.Context, unit string) error {
	u.c.Stop(u.m)
	return u.Start(ctx, unit)
}
func (u *unitStandIn) Start(context.Context, string) error {
	if u.failStart {
		return errors.New("job failed")
	}
	delete(u.m.Extra, "force-new-cluster")
	if _, err := os.Stat(filepath.Join(u.s.dropInDir(), dropInName)); err == nil {
		env, _ := os.ReadFile(u.s.envFile())
		if strings.Contains(string(env), "ETCD_FORCE_NEW_CLUSTER=true") {
			u.m.Extra["force-new-cluster"] = "true"
		}
	}
	return u.c.Start(u.m)
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
	s.Units = &unitStandIn{c: c, m: m, s: &s}
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
	s.Units = &unitStandIn{c: c, m: m, s: &s, failStart: true}
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
	s.Units = &unitStandIn{c: c, m: m, s: &s}
	if err := s.writeDropIn(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), &module.Task{}, s)
	if err != nil || !strings.Contains(strings.Join(r.Actions, ";"), "interrupted run") {
		t.Fatalf("run: %+v %v", r, err)
	}
}
