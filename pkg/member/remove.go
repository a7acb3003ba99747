package member

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// absent removes the selected member; a member already gone is no change.
func (c *cluster) absent(ctx context.Context) (*Result, error) {
	m := c.selected()
	if m == nil {
		return &Result{Operation: "none", Members: c.view()}, nil
	}
	if !m.IsLearner && !c.spec.Force {
		if err := c.quorumAfterRemoval(ctx, m); err != nil {
			return nil, err
		}
	}
	removed := info(m)
	movedTo, err := c.moveLeaderOff(ctx, m)
	if err != nil {
		return nil, err
	}
	if c.task.CheckMode {
		c.members = without(c.members, m.ID)
		return &Result{Operation: "removed", Member: &removed, Members: c.view(), LeaderMovedTo: movedTo}, nil
	}
	var resp *clientv3.MemberRemoveResponse
	attempts := 0
	err = c.retry(ctx, removeRetryable, func(cctx context.Context) (err error) {
		attempts++
		resp, err = c.cli.MemberRemove(cctx, m.ID)
		return err
	})
	switch {
	case err == nil:
		c.members = resp.Members
	case errors.Is(err, rpctypes.ErrMemberNotFound):
		// Removed meanwhile. After a retry, by this task's earlier attempt: a member removed through
		// its own endpoint applies its removal and stops, answering "server stopped".
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
		if attempts > 1 {
			return &Result{Operation: "removed", Member: &removed, Members: c.view(), LeaderMovedTo: movedTo}, nil
		}
		return &Result{Operation: "none", Members: c.view()}, nil
	case transient(err):
		return nil, fmt.Errorf("etcd refused to remove %s (%x): %w (still after %s); etcd's strict reconfiguration "+
			"check keeps a quorum of connected voters: start the stopped members first", displayName(m), m.ID, err, c.spec.Timeout)
	default:
		return nil, c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("member remove %s (%x): %w", displayName(m), m.ID, err))
	}
	return &Result{Operation: "removed", Member: &removed, Members: c.view(), LeaderMovedTo: movedTo}, nil
}

// quorumAfterRemoval refuses to remove a voter when the voters left would not have enough started,
// healthy members for their quorum: the cluster would stop accepting writes.
func (c *cluster) quorumAfterRemoval(ctx context.Context, target *etcdserverpb.Member) error {
	var rest []*etcdserverpb.Member
	for _, m := range c.members {
		if m.ID != target.ID && !m.IsLearner {
			rest = append(rest, m)
		}
	}
	need := len(rest)/2 + 1
	healthy, down := c.health(ctx, rest)
	if healthy >= need {
		return nil
	}
	return fmt.Errorf("refusing to remove %s (%x): of the %d voting members left, only %d are started and healthy "+
		"(down: %s) and their quorum needs %d; bring the down members back first, remove a down member instead, or "+
		"set force: true if you know they will return", displayName(target), target.ID, len(rest), healthy,
		strings.Join(down, ", "), need)
}

// health counts the members that are started and answer a status request on a client URL, and
// names the others.
func (c *cluster) health(ctx context.Context, ms []*etcdserverpb.Member) (healthy int, down []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range ms {
		if !started(m) {
			down = append(down, fmt.Sprintf("%x (never started)", m.ID))
			continue
		}
		wg.Add(1)
		go func(m *etcdserverpb.Member) {
			defer wg.Done()
			_, err := c.status(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				down = append(down, fmt.Sprintf("%s (%v)", m.Name, err))
				return
			}
			healthy++
		}(m)
	}
	wg.Wait()
	sort.Strings(down)
	return healthy, down
}

// status asks a member itself (its first client URL that answers) for its raft status.
func (c *cluster) status(ctx context.Context, m *etcdserverpb.Member) (*clientv3.StatusResponse, error) {
	st, _, err := c.statusAt(ctx, m)
	return st, err
}

func without(ms []*etcdserverpb.Member, id uint64) []*etcdserverpb.Member {
	var out []*etcdserverpb.Member
	for _, m := range ms {
		if m.ID != id {
			out = append(out, m)
		}
	}
	return out
}
