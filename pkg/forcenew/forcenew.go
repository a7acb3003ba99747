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
	"sort"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Spec names the service and the member's own endpoint (Conn.Endpoints[0]).
type Spec struct {
	Conn    etcdconn.Options
	Unit    string // e.g. etcd.service, a valid unit name (systemd.UnitName)
	RunDir  string // the runtime unit dir, /run/systemd/system
	Timeout time.Duration
	// Others are client URLs of the cluster's other members, asked besides those the member lists
	// (the only ones known while the member is stopped).
	Others []string
	// Force skips the check that the member's cluster has lost quorum.
	Force bool
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
	if s.Force {
		r.Actions = append(r.Actions, "force: the cluster's quorum was not checked")
	} else if m, err := s.mayForce(ctx); err != nil {
		return r, err
	} else if m != nil {
		r.fill(*m)
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

// standing is what one endpoint says of its cluster.
type standing struct {
	self    member
	members []member
	quorum  bool // a linearizable read succeeded
}

// look asks an endpoint for its member list (served by the member itself, also without quorum) and
// whether the cluster serves a linearizable read.
func look(ctx context.Context, o etcdconn.Options, endpoint string) (st standing, err error) {
	// The members asked here are expected to be stopped: each would cost dial_timeout otherwise.
	if err := o.Refused(endpoint); err != nil {
		return st, err
	}
	cli, err := o.V3Single(endpoint)
	if err != nil {
		return st, err
	}
	defer cli.Close()
	cctx, cancel := o.Ctx(ctx)
	defer cancel()
	// The client's MemberList asks for a linearizable list, which a member without quorum cannot give.
	ml, err := pb.NewClusterClient(cli.ActiveConnection()).MemberList(cctx, &pb.MemberListRequest{})
	if err != nil {
		return st, o.Explain(endpoint, err)
	}
	for _, m := range ml.Members {
		mm := member{id: m.ID, name: m.Name, peer: m.PeerURLs, client: m.ClientURLs}
		if m.ID == ml.Header.MemberId {
			st.self = mm
		}
		st.members = append(st.members, mm)
	}
	_, err = cli.Get(cctx, "etcdops-force-new-cluster-probe")
	st.quorum = err == nil
	return st, nil
}

// single returns the member when the endpoint serves a cluster of exactly one member (itself) and
// answers a linearizable read.
func single(ctx context.Context, o etcdconn.Options) (member, error) {
	st, err := look(ctx, o, o.Endpoints[0])
	if err != nil {
		return member{}, err
	}
	if !st.quorum || len(st.members) != 1 || st.members[0].id != st.self.id {
		return member{}, fmt.Errorf("the cluster has %d members (quorum: %v)", len(st.members), st.quorum)
	}
	return st.self, nil
}

// mayForce decides whether force-new-cluster may go ahead: only when the member's cluster has lost
// quorum. It returns the member when it already serves a one-member cluster (nothing to do), and an
// error that refuses when its cluster still has quorum or when it cannot tell: a force-new-cluster
// beside a working cluster splits it in two, each side taking writes.
func (s Spec) mayForce(ctx context.Context) (*member, error) {
	own := s.Conn.Endpoints[0]
	const override = "; set force: true only if you know the rest of the cluster is gone for good"
	st, err := look(ctx, s.Conn, own)
	switch {
	case err == nil && st.quorum && len(st.members) == 1 && st.members[0].id == st.self.id:
		return &st.self, nil
	case err == nil && st.quorum:
		return nil, fmt.Errorf("refusing force-new-cluster: %s (member %s) belongs to a cluster of %d members that has quorum "+
			"(a linearizable read succeeded); forcing it would split the cluster. Remove or replace the member with "+
			"etcd_member instead%s", own, st.self.name, len(st.members), override)
	case err != nil && !refused(err):
		return nil, fmt.Errorf("refusing force-new-cluster: cannot tell whether the member's cluster has lost quorum, "+
			"its own endpoint does not answer: %w%s", s.Conn.Explain(own, err), override)
	}
	others := map[string]bool{}
	for _, ep := range s.Others {
		others[ep] = true
	}
	for _, m := range st.members {
		for _, ep := range m.client {
			others[ep] = m.id != st.self.id
		}
	}
	delete(others, own)
	var asked []string
	for ep, ask := range others {
		if ask {
			asked = append(asked, ep)
		}
	}
	sort.Strings(asked)
	if err != nil && len(asked) == 0 {
		return nil, fmt.Errorf("refusing force-new-cluster: %s does not answer (etcd stopped) and no cluster_endpoints were given, "+
			"so whether the rest of its cluster still has quorum cannot be told; give the other members' client URLs "+
			"in cluster_endpoints%s", own, override)
	}
	for _, ep := range asked {
		ost, oerr := look(ctx, s.Conn, ep)
		switch {
		case oerr == nil && ost.quorum:
			return nil, fmt.Errorf("refusing force-new-cluster: %s (member %s) still answers with quorum in a cluster of %d "+
				"members; forcing %s would split the cluster. Stop the other members first%s", ep, ost.self.name,
				len(ost.members), own, override)
		case oerr != nil && !down(oerr):
			return nil, fmt.Errorf("refusing force-new-cluster: cannot tell whether %s is down: %w%s", ep, s.Conn.Explain(ep, oerr), override)
		}
	}
	return nil, nil
}

// refused is a connection refused: nothing listens, the member's etcd is stopped.
func refused(err error) bool { return strings.Contains(err.Error(), "connection refused") }

// down is an error of a member that does not run or whose host does not answer (as opposed to one
// that answers but cannot be understood: TLS, credentials).
func down(err error) bool {
	msg := err.Error()
	return refused(err) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "context deadline exceeded") ||
		strings.Contains(msg, "no route to host") || strings.Contains(msg, "i/o timeout") ||
		strings.Contains(msg, "request timed out") || strings.Contains(msg, "no leader")
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
