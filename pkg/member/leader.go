package member

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// moveLeaderOff transfers the leadership from m, when m leads, to the started voter that answers with
// the highest applied raft index, so a removal never takes the leader out from under the cluster
// (seed 003: "never remove the leader"). It returns the new leader's name ("" when m does not lead or
// does not answer: a member that does not answer is not a working cluster's leader).
func (c *cluster) moveLeaderOff(ctx context.Context, m *etcdserverpb.Member) (string, error) {
	if m.IsLearner || !started(m) {
		return "", nil
	}
	st, ep, err := c.statusAt(ctx, m)
	if err != nil || st.Leader != m.ID || !canMoveLeader(st.Version) {
		// Before 3.3 etcd has no leadership transfer: its removed leader steps down by itself once
		// the change is applied, and the others elect a new one (an election's pause for clients).
		return "", nil
	}
	var to *etcdserverpb.Member
	var best uint64
	for _, o := range c.members {
		if o.ID == m.ID || o.IsLearner || !started(o) {
			continue
		}
		ost, _, err := c.statusAt(ctx, o)
		if err == nil && (to == nil || ost.RaftAppliedIndex > best) {
			to, best = o, ost.RaftAppliedIndex
		}
	}
	if to == nil {
		return "", fmt.Errorf("refusing to remove %s (%x): it is the leader and no other started voter answers to "+
			"take the leadership over; start the other members first", displayName(m), m.ID)
	}
	return to.Name, c.moveLeader(ctx, ep, m, to)
}

// leader makes the selected member the leader (etcdctl move-leader), e.g. a new member before the old
// ones are stopped and removed one by one; a member that already leads is no change.
func (c *cluster) leader(ctx context.Context) (*Result, error) {
	m := c.selected()
	if m == nil {
		return nil, fmt.Errorf("no member matches %s; members: %s", c.selector(), strings.Join(memberLines(c.view()), "; "))
	}
	if m.IsLearner || !started(m) {
		return nil, fmt.Errorf("%s (%x) cannot lead: only a started voter can (start it, then promote it with state: promoted)", displayName(m), m.ID)
	}
	var cur *etcdserverpb.Member
	var ep string
	for _, o := range c.members {
		if st, _, err := c.statusAt(ctx, o); err == nil && st.Leader != 0 {
			cur = c.byID(st.Leader, nil)
			break
		}
	}
	var version string
	if cur != nil {
		if st, at, err := c.statusAt(ctx, cur); err == nil {
			ep, version = at, st.Version
		}
	}
	if cur == nil || ep == "" {
		return nil, fmt.Errorf("no member answers with a leader that answers itself; members: %s", strings.Join(memberLines(c.view()), "; "))
	}
	if !canMoveLeader(version) {
		return nil, fmt.Errorf("etcd %s has no leadership transfer (MoveLeader came with etcd 3.3): state leader needs 3.3 or later", version)
	}
	self := info(m)
	if cur.ID == m.ID {
		return &Result{Operation: "none", Member: &self, Members: c.view()}, nil
	}
	if err := c.moveLeader(ctx, ep, cur, m); err != nil {
		return nil, err
	}
	return &Result{Operation: "leader_moved", Member: &self, Members: c.view(), LeaderMovedTo: m.Name}, nil
}

// moveLeader asks the leader from (at its client URL ep: MoveLeader is served by the leader only) to
// hand the leadership to to; in check mode it changes nothing.
func (c *cluster) moveLeader(ctx context.Context, ep string, from, to *etcdserverpb.Member) error {
	if c.task.CheckMode {
		return nil
	}
	cli, err := c.conn.V3Single(ep)
	if err != nil {
		return err
	}
	defer cli.Close()
	err = c.retryTransient(ctx, func(cctx context.Context) error {
		_, err := cli.MoveLeader(cctx, to.ID)
		return err
	})
	if err != nil {
		return c.conn.Explain(ep, fmt.Errorf("move leader from %s (%x) to %s (%x): %w", displayName(from), from.ID, displayName(to), to.ID, err))
	}
	return nil
}

// canMoveLeader says whether a server of this version serves MoveLeader (etcd 3.3 and later).
func canMoveLeader(version string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil {
		return true // unknown: let the server answer
	}
	return major > 3 || (major == 3 && minor >= 3)
}

// statusAt asks a member itself for its raft status and returns the client URL that answered.
func (c *cluster) statusAt(ctx context.Context, m *etcdserverpb.Member) (*clientv3.StatusResponse, string, error) {
	var lastErr error
	for _, ep := range m.ClientURLs {
		st, err := c.statusOf(ctx, ep)
		if err == nil {
			return st, ep, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no client URLs")
	}
	return nil, "", lastErr
}

func (c *cluster) statusOf(ctx context.Context, ep string) (*clientv3.StatusResponse, error) {
	cli, err := c.conn.V3Single(ep)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, c.conn.DialTimeout)
	defer cancel()
	return cli.Status(cctx, ep)
}
