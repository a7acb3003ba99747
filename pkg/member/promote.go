package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// promoted makes the selected learner a voter once it has caught up with the leader.
func (c *cluster) promoted(ctx context.Context) (*Result, error) {
	deadline := time.Now().Add(c.spec.Timeout)
	m := c.selected()
	// A learner publishes its name only after it has joined and applied the cluster's state, so a
	// promote right after the first start may not find it by name yet: wait while a nameless member
	// could be it.
	for m == nil && c.spec.Name != "" && c.hasUnstarted() && time.Now().Before(deadline) {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
		m = c.selected()
	}
	if m == nil {
		hint := ""
		if c.hasUnstarted() {
			hint = "; a member that was added but never started has no name yet: start etcd on it first (or select it by peer_urls)"
		}
		return nil, fmt.Errorf("no member matches %s; members: %s%s", c.selector(), strings.Join(memberLines(c.view()), "; "), hint)
	}
	if !m.IsLearner {
		return c.promotedResult("none", m), nil
	}
	if c.task.CheckMode {
		m.IsLearner = false
		return c.promotedResult("promoted", m), nil
	}
	var first *syncProgress // at the first refusal: the timeout message tells a stuck learner from a slow one
	for {
		cctx, cancel := c.conn.Ctx(ctx)
		resp, err := c.cli.MemberPromote(cctx, m.ID)
		cancel()
		switch {
		case err == nil:
			c.members = resp.Members
			return c.promotedResult("promoted", c.byID(m.ID, m)), nil
		case errors.Is(err, rpctypes.ErrMemberNotLearner):
			// Promoted meanwhile (by an earlier, interrupted attempt whose answer was lost).
			if err := c.refresh(ctx); err != nil {
				return nil, err
			}
			return c.promotedResult("none", c.byID(m.ID, m)), nil
		case !transient(err):
			return nil, c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("member promote %s (%x): %w", displayName(m), m.ID, err))
		}
		if first == nil {
			first = c.syncProgress(ctx, m)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("learner %s (%x) is still not in sync with the leader after %s: %w (%s)",
				displayName(m), m.ID, c.spec.Timeout, err, notInSync(first, c.syncProgress(ctx, m)))
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// syncProgress is the learner's and its leader's applied raft index at one moment.
type syncProgress struct {
	at              time.Time
	learner, leader uint64
	leaderName      string
	unknown         string // why the indexes could not be read ("": read)
}

// syncProgress reads the learner's applied raft index and the leader's, for the timeout message.
func (c *cluster) syncProgress(ctx context.Context, learner *etcdserverpb.Member) *syncProgress {
	p := &syncProgress{at: time.Now()}
	learnerSt, err := c.status(ctx, learner)
	if err != nil {
		p.unknown = fmt.Sprintf("learner status unavailable: %v", err)
		return p
	}
	p.learner = learnerSt.RaftAppliedIndex
	leader := c.byID(learnerSt.Leader, nil)
	if leader == nil {
		p.unknown = fmt.Sprintf("learner applied index %d, no leader known to it", p.learner)
		return p
	}
	p.leaderName = leader.Name
	leaderSt, err := c.status(ctx, leader)
	if err != nil {
		p.unknown = fmt.Sprintf("learner applied index %d, leader %s status unavailable: %v", p.learner, leader.Name, err)
		return p
	}
	p.leader = leaderSt.RaftAppliedIndex
	return p
}

// notInSync says, from the progress at the first refusal and at the deadline, why the learner is not
// in sync and what to do: a learner that applied nothing meanwhile hears nothing from the leader (a
// partition, a firewall on the peer port: waiting longer would not help) unless a snapshot is still on
// its way; one that applied entries is catching up (a large data set: a longer timeout, or a re-run).
func notInSync(first, last *syncProgress) string {
	switch {
	case first.unknown != "" || last.unknown != "":
		what := last.unknown
		if what == "" {
			what = first.unknown
		}
		return what + "; check that etcd runs on it and reaches its peers (its log), or raise timeout for a large data set"
	case last.learner == first.learner:
		return fmt.Sprintf("learner applied index %d, unchanged in %s, while leader %s went from %d to %d: the learner "+
			"does not hear from the leader, or is still receiving a snapshot; check that etcd runs on it and that it and %s "+
			"reach each other's peer URL (a network partition, a firewall; its log says), then run again",
			last.learner, last.at.Sub(first.at).Round(time.Second), last.leaderName, first.leader, last.leader, last.leaderName)
	}
	return fmt.Sprintf("learner applied index from %d to %d in %s, leader %s from %d to %d: it is catching up; raise "+
		"timeout for a large data set, or run again", first.learner, last.learner, last.at.Sub(first.at).Round(time.Second),
		last.leaderName, first.leader, last.leader)
}

func (c *cluster) promotedResult(op string, m *etcdserverpb.Member) *Result {
	self := info(m)
	return &Result{Operation: op, Member: &self, Members: c.view()}
}

func (c *cluster) hasUnstarted() bool {
	for _, m := range c.members {
		if !started(m) {
			return true
		}
	}
	return false
}

// byID returns the member with that id from the current list, or fallback.
func (c *cluster) byID(id uint64, fallback *etcdserverpb.Member) *etcdserverpb.Member {
	for _, m := range c.members {
		if m.ID == id {
			return m
		}
	}
	return fallback
}

func (c *cluster) selector() string {
	switch {
	case c.spec.ID != "":
		return "id " + c.spec.ID
	case len(c.spec.PeerURLs) > 0:
		return "peer_urls " + strings.Join(c.spec.PeerURLs, ",")
	}
	return "name " + c.spec.Name
}
