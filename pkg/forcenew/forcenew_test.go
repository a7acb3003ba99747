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
	"github.com/etcdops/etcd/pkg/etcdconn"
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
	// Through the first member, which answers once it has applied the put itself: a put is acknowledged
	// once two members hold it, and a CI run once stopped the first member without the key.
	if _, err := c.Client(t, c.Members[0]).Put(ctx, "/kubernetes.io/kept", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		c.Stop(m)
	}
	return c, c.Members[0]
}

func TestForceNewClusterKeepsDataAndLeavesNoDropIn(t *testing.T) {
	c, m := threeStopped(t)
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 30 * time.Second, Others: c.Endpoints(c.Members[1:]...)}
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
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 5 * time.Second, Force: true}
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
	s := Spec{Conn: c.ConnOptions(m), Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 30 * time.Second, Others: c.Endpoints(c.Members[1:]...)}
	s.Units = &unitStandIn{c: c, m: m, s: &s}
	if err := s.writeDropIn(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), &module.Task{}, s)
	if err != nil || !strings.Contains(strings.Join(r.Actions, ";"), "interrupted run") {
		t.Fatalf("run: %+v %v", r, err)
	}
}

// A member whose cluster still has quorum is refused, in check mode too, and nothing is stopped:
// running in a healthy cluster, answering through a CA that does not sign it (cannot tell), stopped
// while the others keep quorum, and stopped with no other member named (cannot tell).
func TestRefusesUnlessQuorumIsLost(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	m := c.Members[0]
	badCA := c.ConnOptions(m)
	badCA.CACert = c.Cert // a certificate that is not the CA
	cases := []struct {
		name    string
		stop    bool
		conn    etcdconn.Options
		others  []string
		refusal string
	}{
		{"healthy cluster", false, c.ConnOptions(m), nil, "has quorum"},
		{"wrong CA", false, badCA, nil, "cannot tell"},
		{"stopped, the others keep quorum", true, c.ConnOptions(m), c.Endpoints(c.Members[1:]...), "still answers with quorum"},
		{"stopped, no other member named", true, c.ConnOptions(m), nil, "cluster_endpoints"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stop {
				c.Stop(m)
				t.Cleanup(func() {
					if err := c.Start(m); err != nil {
						t.Fatal(err)
					}
				})
			}
			s := Spec{Conn: tc.conn, Unit: "etcd.service", RunDir: t.TempDir(), Timeout: 5 * time.Second, Others: tc.others}
			u := &unitStandIn{c: c, m: m, s: &s}
			s.Units = u
			for _, check := range []bool{true, false} {
				task := &module.Task{CheckMode: check}
				_, err := Run(context.Background(), task, s)
				if err == nil || !strings.Contains(err.Error(), tc.refusal) || !strings.Contains(err.Error(), "force: true") || task.IsChanged() {
					t.Fatalf("check=%v: want a refusal naming %q and force: true, got changed=%v %v", check, tc.refusal, task.IsChanged(), err)
				}
			}
			if c.Running(m) == tc.stop {
				t.Fatalf("member %s running=%v, want it as it was", m.Name, c.Running(m))
			}
			ml, err := c.Client(t, c.Members[1]).MemberList(context.Background())
			if err != nil || len(ml.Members) != 3 {
				t.Fatalf("members after the refusal: %v %v", ml, err)
			}
			if _, err := os.Stat(s.dropInDir()); !os.IsNotExist(err) {
				t.Fatalf("a drop-in dir was written: %v", err)
			}
		})
	}
}
