package member

import (
	"context"
	"fmt"

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
	if err != nil || st.Leader != m.ID {
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
	if c.task.CheckMode {
		return to.Name, nil
	}
	cli, err := c.conn.V3Single(ep) // MoveLeader is served by the leader only
	if err != nil {
		return "", err
	}
	defer cli.Close()
	err = c.retryTransient(ctx, func(cctx context.Context) error {
		_, err := cli.MoveLeader(cctx, to.ID)
		return err
	})
	if err != nil {
		return "", c.conn.Explain(ep, fmt.Errorf("move leader from %s (%x) to %s (%x): %w", displayName(m), m.ID, to.Name, to.ID, err))
	}
	return to.Name, nil
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
