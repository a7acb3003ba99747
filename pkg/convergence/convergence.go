// Package convergence waits until an etcd cluster has settled: every member answers, they agree on
// a leader and their raft indexes are within a tolerance of each other for several polls in a row.
// The v2→v3 migration guide asks for this after stopping the API servers and before stopping etcd
// ("the raft index values must not differ by more than one"). Optionally every member must also hold
// the same v3 data: the hash of its keyspace at one revision (HashKV).
package convergence

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/etcdops/etcd/pkg/clusterinfo"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Spec tunes the wait; the module's defaults are in its params.
type Spec struct {
	Tolerance      uint64        // allowed max − min raft index
	StablePolls    int           // consecutive converged polls needed
	Interval       time.Duration // time between the starts of two polls
	Timeout        time.Duration // give up (and fail) after this long
	RequireHealthy bool          // also require a linearizable read through every member
	// RequireSameData also requires every voting member's v3 keyspace to hash the same at one revision
	// (HashKV, etcd 3.3 and later; etcd 3.2 has none, and the result says the data was not compared).
	RequireSameData bool
}

// MemberIndex is one member's state in a poll.
type MemberIndex struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Endpoint         string `json:"endpoint"`
	RaftTerm         uint64 `json:"raft_term"`
	RaftIndex        uint64 `json:"raft_index"`
	RaftAppliedIndex uint64 `json:"raft_applied_index"`
	Leader           string `json:"leader"`
	IsLeader         bool   `json:"is_leader"`
	IsLearner        bool   `json:"is_learner"`
	Healthy          bool   `json:"healthy"` // only checked with require_healthy
	Version          string `json:"version"` // the server's, e.g. 3.4.23 ("" without a status)
	// KeyspaceHash is the hash of the member's v3 keyspace at the result's hash_revision (only with
	// require_same_data).
	KeyspaceHash uint32 `json:"keyspace_hash,omitempty"`
	Error        string `json:"error"`
}

// Result is the module result.
type Result struct {
	Converged bool    `json:"converged"`
	Elapsed   float64 `json:"elapsed"` // seconds
	Polls     int     `json:"polls"`
	Leader    string  `json:"leader"`
	// Spread is max − min raft index in the last poll (over the members that answered).
	Spread  uint64        `json:"spread"`
	Members []MemberIndex `json:"members"` // the last poll
	// Reason says why the last poll did not count as converged ("" when it did).
	Reason string `json:"reason"`
	// HashRevision is the revision the members' keyspaces were hashed at (require_same_data); 0 when
	// they were not compared, and DataNotCompared then says why.
	HashRevision    int64  `json:"hash_revision"`
	DataNotCompared string `json:"data_not_compared,omitempty"`
	// Table is Members as the lines of a table: Ansible's default output prints a list line by
	// line, where the same table inside msg shows as one line with \n escapes.
	Table []string `json:"table"`
}

// Wait polls until the cluster converges or the timeout passes. On timeout it returns a
// *module.Error whose message holds a table of the last poll and whose result is the Result.
// A poll that is under way when the timeout passes is finished (it is bounded by dial_timeout and
// command_timeout), so the table always shows a complete look at the cluster.
func Wait(ctx context.Context, o *etcdconn.Options, s Spec) (*Result, error) {
	start := time.Now()
	w := &waiter{opts: o, spec: s, prober: clusterinfo.NewProber(o)}
	defer w.close()

	res := &Result{Members: []MemberIndex{}, Table: []string{}}
	stable := 0
	for {
		pollStart := time.Now()
		res.Polls++
		res.Members, res.Leader, res.Spread, res.Reason = w.poll(ctx)
		res.HashRevision, res.DataNotCompared = 0, ""
		// Each member reads its whole keyspace for a hash: only on the poll that would complete the stable
		// streak, not on every poll of it.
		if res.Reason == "" && s.RequireSameData && stable+1 >= s.StablePolls {
			res.HashRevision, res.DataNotCompared, res.Reason = w.sameData(ctx, res.Members)
		}
		res.Table = strings.Split(strings.TrimRight(Table(res.Members), "\n"), "\n")
		if res.Reason == "" {
			stable++
		} else {
			stable = 0
		}
		res.Elapsed = math.Round(time.Since(start).Seconds()*1000) / 1000
		if stable >= s.StablePolls {
			res.Converged = true
			return res, nil
		}
		if time.Since(start)+s.Interval > s.Timeout {
			return res, &module.Error{Err: timeoutError(res, s), Result: res}
		}
		select {
		case <-ctx.Done():
			return res, &module.Error{Err: ctx.Err(), Result: res}
		case <-time.After(s.Interval - time.Since(pollStart)):
		}
	}
}

// waiter keeps its clients across polls; one that failed is redialled on the next poll, so a
// member that comes back is seen again.
type waiter struct {
	opts   *etcdconn.Options
	spec   Spec
	cli    *clientv3.Client
	prober *clusterinfo.Prober
}

func (w *waiter) close() {
	if w.cli != nil {
		w.cli.Close()
	}
	w.prober.Close()
}

func (w *waiter) members(ctx context.Context) ([]clusterinfo.Member, error) {
	o := w.opts
	if w.cli == nil {
		cli, err := o.V3()
		if err != nil {
			return nil, err
		}
		w.cli = cli
	}
	rctx, cancel := o.Ctx(ctx)
	defer cancel()
	list, _, err := clusterinfo.Members(rctx, w.cli)
	if err != nil {
		w.cli.Close()
		w.cli = nil
		return nil, o.Explain(strings.Join(o.Endpoints, ","), fmt.Errorf("member list: %w", err))
	}
	return list, nil
}

// poll takes one look at every member and returns why it is not converged ("" when it is).
func (w *waiter) poll(ctx context.Context) (members []MemberIndex, leader string, spread uint64, reason string) {
	list, err := w.members(ctx)
	if err != nil {
		return []MemberIndex{}, "", 0, err.Error()
	}
	// Members are asked through their own first client URL: the endpoints given may not cover
	// every member, and convergence is about all of them.
	endpoints := make([]string, len(list))
	for i, m := range list {
		if len(m.ClientURLs) > 0 {
			endpoints[i] = m.ClientURLs[0]
		}
	}
	return judge(list, endpoints, w.prober.ProbeAll(ctx, endpoints, w.spec.RequireHealthy), w.spec)
}

// judge decides from one poll's answers (statuses[i] is list[i]'s, asked at endpoints[i]).
func judge(list []clusterinfo.Member, endpoints []string, statuses []clusterinfo.EndpointStatus, spec Spec) (
	members []MemberIndex, leader string, spread uint64, reason string) {
	members = make([]MemberIndex, 0, len(list))
	var problems []string
	var lo, hi uint64 = math.MaxUint64, 0
	leaders := map[string]bool{}
	for i, m := range list {
		st := statuses[i]
		mi := MemberIndex{ID: m.ID, Name: m.Name, Endpoint: endpoints[i], Healthy: st.Healthy, Error: st.Error}
		switch {
		case endpoints[i] == "":
			mi.Error = "member has not started (no client URLs)"
			problems = append(problems, fmt.Sprintf("member %s has not started", m.ID))
		case !st.Reachable:
			problems = append(problems, fmt.Sprintf("member %s (%s) reports no status", m.Name, m.ID))
		default:
			mi.RaftTerm, mi.RaftIndex, mi.RaftAppliedIndex = st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex
			mi.Leader, mi.IsLeader, mi.IsLearner, mi.Version = st.Leader, st.IsLeader, st.IsLearner, st.Version
			lo, hi = min(lo, st.RaftIndex), max(hi, st.RaftIndex)
			if st.Leader == "" {
				problems = append(problems, fmt.Sprintf("member %s (%s) knows no leader", m.Name, m.ID))
			} else {
				leaders[st.Leader] = true
			}
			if spec.RequireHealthy && !st.Healthy {
				problems = append(problems, fmt.Sprintf("member %s (%s) is not healthy", m.Name, m.ID))
			}
		}
		members = append(members, mi)
	}
	if hi >= lo {
		spread = hi - lo
	}
	for l := range leaders {
		leader = l
	}
	if len(leaders) > 1 {
		leader = ""
		problems = append(problems, "members name different leaders")
	}
	if spread > spec.Tolerance {
		problems = append(problems, fmt.Sprintf("raft indexes differ by %d (tolerance %d)", spread, spec.Tolerance))
	}
	return members, leader, spread, strings.Join(problems, "; ")
}

// sameData asks every voting member for the hash of its v3 keyspace (HashKV at its current revision): raft
// indexes that agree say the members applied as many entries, not that they hold the same data (a member
// whose data dir was given to it by hand, or a bug, would not show). The hashes are compared when every
// member answers at the same revision and compaction; otherwise the poll does not count yet. Learners are
// left out (etcd refuses HashKV on a learner).
func (w *waiter) sameData(ctx context.Context, members []MemberIndex) (rev int64, notCompared, reason string) {
	// All at once: each member hashes its own keyspace, and at one moment they are likelier at one revision.
	type answer struct {
		resp *clientv3.HashKVResponse
		err  error
	}
	answers := make([]answer, len(members))
	var wg sync.WaitGroup
	for i := range members {
		if members[i].IsLearner {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hctx, cancel := w.opts.Ctx(ctx)
			defer cancel()
			answers[i].resp, answers[i].err = w.cli.HashKV(hctx, members[i].Endpoint, 0)
		}(i)
	}
	wg.Wait()
	var compact int64
	var first string
	for i := range members {
		m := &members[i]
		if m.IsLearner {
			continue
		}
		resp, err := answers[i].resp, answers[i].err
		if status.Code(err) == codes.Unimplemented {
			return 0, fmt.Sprintf("member %s has no HashKV (etcd 3.2): the members' data was not compared", m.Name), ""
		}
		if err != nil {
			m.Error = "hash of its keyspace: " + err.Error()
			return 0, "", fmt.Sprintf("member %s (%s) gave no hash of its keyspace: %v", m.Name, m.ID, err)
		}
		m.KeyspaceHash = resp.Hash
		switch {
		case first == "":
			first, rev, compact = m.Name, resp.Header.Revision, resp.CompactRevision
		case resp.Header.Revision != rev || resp.CompactRevision != compact:
			return 0, "", fmt.Sprintf("members hash at different revisions: %s at %d (compacted at %d), %s at %d (compacted at %d)",
				first, rev, compact, m.Name, resp.Header.Revision, resp.CompactRevision)
		}
	}
	return rev, "", differentData(members, rev)
}

// differentData names the voting members whose keyspace hash differs from the first one's ("" when none does).
func differentData(members []MemberIndex, rev int64) string {
	var ref *MemberIndex
	var differ []string
	for i := range members {
		m := &members[i]
		switch {
		case m.IsLearner:
		case ref == nil:
			ref = m
		case m.KeyspaceHash != ref.KeyspaceHash:
			differ = append(differ, fmt.Sprintf("%s (%s) hashes to %d", m.Name, m.ID, m.KeyspaceHash))
		}
	}
	if len(differ) == 0 {
		return ""
	}
	return fmt.Sprintf("members hold different data at revision %d: %s hashes to %d, %s", rev,
		ref.Name, ref.KeyspaceHash, strings.Join(differ, ", "))
}

func timeoutError(res *Result, s Spec) error {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd did not converge within %s (%d polls; needed raft index spread <= %d and a leader "+
		"for %d consecutive polls): %s\n", s.Timeout, res.Polls, s.Tolerance, s.StablePolls, res.Reason)
	b.WriteString(Table(res.Members))
	return fmt.Errorf("%s", strings.TrimRight(b.String(), "\n"))
}

// Table renders members like `etcdctl endpoint status -w table`, one line per member.
func Table(members []MemberIndex) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tNAME\tENDPOINT\tLEADER\tRAFT TERM\tRAFT INDEX\tAPPLIED INDEX\tERROR")
	for _, m := range members {
		isLeader := "no"
		if m.IsLeader {
			isLeader = "yes"
		}
		if m.Error != "" && m.RaftIndex == 0 {
			isLeader = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", m.ID, m.Name, m.Endpoint, isLeader,
			m.RaftTerm, m.RaftIndex, m.RaftAppliedIndex, m.Error)
	}
	w.Flush()
	return b.String()
}
