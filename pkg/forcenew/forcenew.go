// Package forcenew starts an etcd systemd service once with force-new-cluster, the way the runbooks do
// with `echo ETCD_FORCE_NEW_CLUSTER=true >> etcd.conf; start; sed -i ...; restart`, but so the setting
// cannot linger: it lives in a runtime drop-in (/run, gone at reboot) that is removed in a defer, and
// a drop-in left by a killed run is removed before anything else. A lingering force-new-cluster would
// throw away the membership at every later restart.
package forcenew

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Spec names the service and the member's own endpoint (Conn.Endpoints[0]).
type Spec struct {
	Conn    etcdconn.Options
	Unit    string // e.g. etcd.service, a valid unit name (systemd.UnitName)
	RunDir  string // the runtime unit dir, /run/systemd/system
	Timeout time.Duration
	// Units stops, starts and restarts the unit and reloads systemd (a *systemd.Conn over D-Bus);
	// tests substitute a stand-in.
	Units systemd.Units
}

// Result reports the single-member cluster that came up.
type Result struct {
	MemberID   string   `json:"member_id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	DropIn     string   `json:"drop_in"`
	Actions    []string `json:"actions"`
}

const dropInName = "zz-etcdops-force-new-cluster.conf"

// dropInDir is where the unit's runtime drop-ins live.
func (s Spec) dropInDir() string { return systemd.DropInDir(s.RunDir, s.Unit) }

// envFile is read by the drop-in. EnvironmentFile= beats Environment= and later files beat earlier
// ones, so this wins over any ETCD_FORCE_NEW_CLUSTER line in etcd.conf. systemd reads only *.conf
// from a drop-in dir, so the file can sit beside the drop-in and go with it.
func (s Spec) envFile() string { return filepath.Join(s.dropInDir(), "etcdops-force-new-cluster.env") }

// Run makes the member a single-member cluster keeping its data, then leaves it running normally.
// When the member already serves a one-member cluster, it does nothing (a re-run after success).
func Run(ctx context.Context, t *module.Task, s Spec) (r Result, err error) {
	r.DropIn = filepath.Join(s.dropInDir(), dropInName)
	if removed, err := s.removeDropIn(ctx); err != nil {
		return r, err
	} else if removed {
		t.Changed()
		r.Actions = append(r.Actions, "removed a force-new-cluster drop-in left by an interrupted run")
	}
	if m, err := single(ctx, s.Conn); err == nil {
		r.fill(m)
		r.Actions = append(r.Actions, "the member already serves a one-member cluster")
		return r, nil
	}
	t.Changed()
	if t.CheckMode {
		r.Actions = append(r.Actions, "would start "+s.Unit+" once with force-new-cluster")
		return r, nil
	}
	if err := s.Units.Stop(ctx, s.Unit); err != nil {
		return r, err
	}
	if err := s.writeDropIn(ctx); err != nil {
		return r, err
	}
	defer func() {
		// Always, also when the start failed or the context ended: the drop-in must not outlive this run.
		if _, rmErr := s.removeDropIn(context.Background()); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	if err := s.Units.Start(ctx, s.Unit); err != nil {
		var job *systemd.JobError
		if errors.As(err, &job) { // it already points at the journal
			return r, fmt.Errorf("start %s with force-new-cluster: %w", s.Unit, err)
		}
		return r, fmt.Errorf("start %s with force-new-cluster: %w (see journalctl -u %s)", s.Unit, err, s.Unit)
	}
	if _, err := waitSingle(ctx, s); err != nil {
		return r, fmt.Errorf("after the force-new-cluster start: %w", err)
	}
	r.Actions = append(r.Actions, "started "+s.Unit+" once with force-new-cluster")
	if _, err := s.removeDropIn(ctx); err != nil {
		return r, err
	}
	if err := s.Units.Restart(ctx, s.Unit); err != nil {
		return r, fmt.Errorf("restart %s without force-new-cluster: %w", s.Unit, err)
	}
	m, err := waitSingle(ctx, s)
	if err != nil {
		return r, fmt.Errorf("after the normal restart: %w", err)
	}
	r.fill(m)
	r.Actions = append(r.Actions, "removed the drop-in and restarted "+s.Unit+" normally")
	return r, nil
}

func (s Spec) writeDropIn(ctx context.Context) error {
	if err := os.MkdirAll(s.dropInDir(), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(s.envFile(), []byte("ETCD_FORCE_NEW_CLUSTER=true\n"), 0o644); err != nil {
		return err
	}
	if err := systemd.WriteDropIn(filepath.Join(s.dropInDir(), dropInName),
		[]string{"Written by etcdops.etcd for one start; removed right after it."},
		systemd.NewOption("Service", "EnvironmentFile", s.envFile())); err != nil {
		return err
	}
	return s.Units.DaemonReload(ctx)
}

func (s Spec) removeDropIn(ctx context.Context) (bool, error) {
	removed, err := systemd.RemoveFiles(filepath.Join(s.dropInDir(), dropInName), s.envFile())
	if err != nil {
		return removed, err
	}
	if removed {
		return true, s.Units.DaemonReload(ctx)
	}
	return false, nil
}

type member struct {
	id           uint64
	name         string
	peer, client []string
}

func (r *Result) fill(m member) {
	r.MemberID, r.Name, r.PeerURLs, r.ClientURLs = fmt.Sprintf("%x", m.id), m.name, m.peer, m.client
}

// single returns the member when the endpoint serves a cluster of exactly one member (itself) and
// answers a linearizable read.
func single(ctx context.Context, o etcdconn.Options) (member, error) {
	cli, err := o.V3Single(o.Endpoints[0])
	if err != nil {
		return member{}, err
	}
	defer cli.Close()
	cctx, cancel := o.Ctx(ctx)
	defer cancel()
	if _, err := cli.Get(cctx, "etcdops-force-new-cluster-probe"); err != nil {
		return member{}, err
	}
	ml, err := cli.MemberList(cctx)
	if err != nil {
		return member{}, err
	}
	if len(ml.Members) != 1 || ml.Members[0].ID != ml.Header.MemberId {
		return member{}, fmt.Errorf("the cluster has %d members", len(ml.Members))
	}
	m := ml.Members[0]
	return member{id: m.ID, name: m.Name, peer: m.PeerURLs, client: m.ClientURLs}, nil
}

func waitSingle(ctx context.Context, s Spec) (member, error) {
	deadline := time.Now().Add(s.Timeout)
	for {
		m, err := single(ctx, s.Conn)
		if err == nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return member{}, fmt.Errorf("%s does not serve a one-member cluster after %s: %w", s.Conn.Endpoints[0], s.Timeout,
				s.Conn.Explain(s.Conn.Endpoints[0], err))
		}
		select {
		case <-ctx.Done():
			return member{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
