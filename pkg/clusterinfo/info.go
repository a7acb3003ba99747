package clusterinfo

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Spec says what to gather besides members, statuses and alarms.
type Spec struct {
	// V3Prefixes are counted (count only, no values read), all at one store revision.
	V3Prefixes []string
	// V2 asks the v2 API whether the v2 keyspace holds data and which top-level nodes it has.
	V2 bool
	// V2DataDir, a member's data dir on this host, adds the hidden top-level nodes, which the v2 API
	// never lists (V2Info.HiddenTopLevel).
	V2DataDir string
}

// Info is the module result. Its keys are the interface other roles rely on (the migration's
// preflight reads v2.has_data, v3.key_counts, v3.revision and endpoint_status[].healthy).
type Info struct {
	ClusterID      string           `json:"cluster_id"`
	Leader         string           `json:"leader"` // hex id; "" when no endpoint knows a leader
	LeaderName     string           `json:"leader_name"`
	Members        []Member         `json:"members"`
	EndpointStatus []EndpointStatus `json:"endpoint_status"`
	// AllHealthy is true when every given endpoint passed the health read.
	AllHealthy bool `json:"all_healthy"`
	// Quorum is true when a leader is known and a linearizable read answered through some endpoint;
	// QuorumReason says which leader and endpoints (or what was missing). The roles that must refuse a
	// cluster holding quorum (restore, force new cluster) read these instead of deciding it themselves.
	Quorum       bool    `json:"quorum"`
	QuorumReason string  `json:"quorum_reason"`
	Alarms       []Alarm `json:"alarms"`
	V3           *V3Keys `json:"v3,omitempty"`
	V2           *V2Info `json:"v2,omitempty"`
	// Warnings are for the operator (Ansible prints them), not part of the result.
	Warnings []string `json:"-"`
}

// Alarm is one raised alarm (`etcdctl alarm list`).
type Alarm struct {
	MemberID string `json:"member_id"`
	Alarm    string `json:"alarm"` // NOSPACE, CORRUPT
}

// V3Keys holds key counts per prefix, all read at Revision.
type V3Keys struct {
	Revision  int64            `json:"revision"`
	TotalKeys int64            `json:"total_keys"`
	KeyCounts map[string]int64 `json:"key_counts"`
}

// Gather reads the cluster through the given endpoints. An endpoint that does not answer is
// reported in EndpointStatus; Gather fails only when none answers (and still returns the statuses,
// with Quorum false).
func Gather(ctx context.Context, o *etcdconn.Options, s Spec) (*Info, error) {
	prober := NewProber(o)
	defer prober.Close()
	statuses := prober.ProbeAll(ctx, o.Endpoints, true)
	var reachable []string
	var failures []string
	for _, st := range statuses {
		if st.Reachable {
			reachable = append(reachable, st.Endpoint)
		} else {
			failures = append(failures, st.Error)
		}
	}
	info := &Info{EndpointStatus: statuses, Members: []Member{}, Alarms: []Alarm{}, AllHealthy: true,
		QuorumReason: "no endpoint answered"}
	for _, st := range statuses {
		info.AllHealthy = info.AllHealthy && st.Healthy
	}
	if len(reachable) == 0 {
		// The statuses and quorum false go with the failure: a preflight that tolerates it reads them.
		return info, &module.Error{Result: info, Err: fmt.Errorf("no etcd endpoint answered: %s", strings.Join(failures, "; "))}
	}

	// Cluster-wide questions go through the endpoints that answered, so a dead one costs no
	// second dial_timeout.
	cluster := *o
	cluster.Endpoints = reachable
	cli, err := cluster.V3()
	if err != nil {
		return nil, err
	}
	defer cli.Close()

	info.Leader = leaderOf(statuses)
	rctx, cancel := o.Ctx(ctx)
	defer cancel()
	members, id, err := Members(rctx, cli)
	if err == nil {
		info.Members, info.ClusterID = members, id
		for _, m := range info.Members {
			if m.ID == info.Leader {
				info.LeaderName = m.Name
			}
		}
	}
	info.Quorum, info.QuorumReason = quorum(info.Leader, info.LeaderName, statuses)
	if err != nil {
		return info, &module.Error{Result: info, Err: o.Explain(strings.Join(reachable, ","), fmt.Errorf("member list: %w", err))}
	}
	if !info.Quorum {
		// No quorum (QuorumReason says why). The alarm list, key counts and the v2 quorum read all
		// go through raft and would only wait out command_timeout, so report what the members said
		// on their own.
		if len(s.V3Prefixes) > 0 || s.V2 {
			return info, &module.Error{Result: info, Err: fmt.Errorf("no quorum (%s): key counts and the v2 read "+
				"need a quorum; endpoint_status shows what each member reports", info.QuorumReason)}
		}
		info.Warnings = append(info.Warnings, "no quorum ("+info.QuorumReason+"); alarms were not read")
		return info, nil
	}
	// From here on a failure still returns what was read (members, statuses) with the error.
	partial := func(what string, err error) (*Info, error) {
		return info, &module.Error{Result: info, Err: o.Explain(strings.Join(reachable, ","), fmt.Errorf("%s: %w", what, err))}
	}
	if info.Alarms, err = alarms(rctx, cli); err != nil {
		info.Alarms = []Alarm{}
		return partial("alarm list", err)
	}
	if len(s.V3Prefixes) > 0 {
		if info.V3, err = countKeys(rctx, cli, s.V3Prefixes); err != nil {
			return partial("v3 key counts", err)
		}
	}
	if s.V2 {
		if info.V2, err = gatherV2(ctx, &cluster, s.V2DataDir); err != nil {
			return partial("v2 read of /", err)
		}
	}
	return info, nil
}

// quorum decides whether the cluster holds quorum now: a leader is known and a linearizable read
// answered. A leader alone is not enough: one whose peers just stopped keeps naming itself until its
// election timeout passes (check-quorum), while no linearizable read goes through.
func quorum(leader, name string, statuses []EndpointStatus) (bool, string) {
	var healthy, unhealthy []string
	for _, st := range statuses {
		if st.Healthy {
			healthy = append(healthy, st.Endpoint)
		} else {
			unhealthy = append(unhealthy, st.Endpoint)
		}
	}
	if name != "" {
		leader = name + " (" + leader + ")"
	}
	switch {
	case leader == "":
		return false, "no reachable member knows a leader (quorum lost, or an election is running)"
	case len(healthy) == 0:
		return false, fmt.Sprintf("leader %s is named, but no linearizable read answered through %s (a leader whose "+
			"peers stopped names itself until its election timeout)", leader, strings.Join(unhealthy, ", "))
	}
	return true, fmt.Sprintf("leader %s, and a linearizable read answered through %s", leader, strings.Join(healthy, ", "))
}

// leaderOf returns the leader known at the highest raft term: after an election a member that
// has not heard of it yet still reports the old leader at the old term.
func leaderOf(statuses []EndpointStatus) string {
	var leader string
	var term uint64
	for _, st := range statuses {
		if st.Reachable && st.Leader != "" && st.RaftTerm >= term {
			leader, term = st.Leader, st.RaftTerm
		}
	}
	return leader
}

func alarms(ctx context.Context, cli *clientv3.Client) ([]Alarm, error) {
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		return nil, err
	}
	out := []Alarm{}
	for _, a := range resp.Alarms {
		out = append(out, Alarm{MemberID: HexID(a.MemberID), Alarm: pb.AlarmType_name[int32(a.Alarm)]})
	}
	return out, nil
}

// countKeys counts keys per prefix. The first request (all keys) fixes the revision; the prefixes
// are counted at that same revision, so the counts form one consistent picture even while
// something writes.
func countKeys(ctx context.Context, cli *clientv3.Client, prefixes []string) (*V3Keys, error) {
	all, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	out := &V3Keys{Revision: all.Header.Revision, TotalKeys: all.Count, KeyCounts: map[string]int64{}}
	sorted := append([]string(nil), prefixes...)
	sort.Strings(sorted)
	for _, p := range sorted {
		resp, err := cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(out.Revision))
		if err != nil {
			return nil, fmt.Errorf("prefix %q: %w", p, err)
		}
		out.KeyCounts[p] = resp.Count
	}
	return out, nil
}
