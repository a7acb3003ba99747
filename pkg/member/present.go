package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// present adds the member, fixes its peer URLs, or finds it already there.
func (c *cluster) present(ctx context.Context) (*Result, error) {
	s := c.spec
	if m := c.byPeerURLs(s.PeerURLs); m != nil {
		// Same peer URLs: already added. Nameless means added but never started (an interrupted
		// run); a different name means the URLs belong to another host's member.
		if started(m) && m.Name != s.Name {
			return nil, fmt.Errorf("peer URLs %s already belong to member %s (%x); give this member its own "+
				"peer URLs, or remove %s first (state: absent, name: %s)", strings.Join(s.PeerURLs, ","), m.Name, m.ID, m.Name, m.Name)
		}
		if m.IsLearner && !s.Learner {
			c.task.Warn("member %s (%x) is a learner; promote it with state: promoted", s.Name, m.ID)
		}
		return c.presentResult("none", m)
	}
	for _, m := range c.members {
		if m.Name != s.Name && sharesURL(m.PeerURLs, s.PeerURLs) {
			return nil, fmt.Errorf("member %s (%x) has peer URLs %s, which overlap %s; give the member's complete "+
				"set of peer URLs in peer_urls, or remove it first", displayName(m), m.ID, strings.Join(m.PeerURLs, ","), strings.Join(s.PeerURLs, ","))
		}
	}
	if m := c.byName(s.Name); m != nil {
		return c.update(ctx, m)
	}
	if err := c.oneChangeAtATime(); err != nil {
		return nil, err
	}
	return c.add(ctx)
}

// oneChangeAtATime refuses a second add while an earlier one is unfinished: a member that never
// started (its host would be a second missing voter, or the new host would join with a stale initial
// cluster) or a learner not yet promoted (etcd allows one learner by default).
func (c *cluster) oneChangeAtATime() error {
	for _, m := range c.members {
		if !started(m) {
			return fmt.Errorf("member %x (peer URLs %s) was added but never started; start etcd on that host "+
				"(or remove it with state: absent, id: %x) before adding %s: membership changes go one at a time",
				m.ID, strings.Join(m.PeerURLs, ","), m.ID, c.spec.Name)
		}
		if m.IsLearner {
			return fmt.Errorf("learner %s (%x) is not promoted yet; promote it (state: promoted, name: %s) or remove it "+
				"before adding %s: membership changes go one at a time", m.Name, m.ID, m.Name, c.spec.Name)
		}
	}
	return nil
}

func (c *cluster) add(ctx context.Context) (*Result, error) {
	s := c.spec
	if c.task.CheckMode {
		c.members = append(c.members, &etcdserverpb.Member{PeerURLs: s.PeerURLs, IsLearner: s.Learner})
		return c.presentResult("added", c.members[len(c.members)-1])
	}
	learner := s.Learner
	if learner {
		version, err := c.serverVersion(ctx)
		if err != nil {
			return nil, err
		}
		if learner = etcdconn.VersionAtLeast(version, 3, 4); !learner && !s.LearnerIfSupported {
			return nil, &module.ParamError{Param: "learner", Msg: fmt.Sprintf("etcd %s has no learners (they came with 3.4); "+
				"set learner: false (or auto) to add a voter", version)}
		}
	}
	var resp *clientv3.MemberAddResponse
	// Right after a removal, the member that answers may still be the removed one, or learn of the
	// removal late ("member not found", "server stopped"), or drop the connection as it stops
	// (Unavailable): retried like the transient refusals.
	unanswered := false
	err := c.retry(ctx, addRetryable, func(cctx context.Context) (err error) {
		if learner {
			resp, err = c.cli.MemberAddAsLearner(cctx, s.PeerURLs)
		} else {
			resp, err = c.cli.MemberAdd(cctx, s.PeerURLs)
		}
		unanswered = unanswered || status.Code(err) == codes.Unavailable
		return err
	})
	if err != nil {
		// A timeout may hide an add that was applied, and "peer URLs exist" means the list read
		// first was stale (etcd 3.4 serves it from the answering member's own state, which can
		// trail a change made through another member by milliseconds) or that an unanswered
		// attempt was applied after all: the member list decides.
		op, reads := "added", 1
		if errors.Is(err, rpctypes.ErrPeerURLExist) {
			reads = 10
			if !unanswered {
				op = "none"
			}
		}
		for i := 0; i < reads; i++ {
			if rerr := c.refresh(ctx); rerr == nil {
				if m := c.byPeerURLs(s.PeerURLs); m != nil {
					return c.presentResult(op, m)
				}
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return nil, err
			}
		}
		return nil, c.explainAdd(err)
	}
	if err := c.aloneInAdding(ctx, resp); err != nil {
		return nil, err
	}
	c.members = resp.Members
	for _, m := range c.members {
		if m.ID == resp.Member.ID {
			return c.presentResult("added", m)
		}
	}
	return c.presentResult("added", resp.Member)
}

// aloneInAdding undoes an add that raced another one. oneChangeAtATime judged a member list read
// before the add; a concurrent run may have added a member since, and two unstarted voters leave a
// cluster that cannot lose another member. The member list etcd answers the add with shows any
// member added before ours that has not started: ours is removed again and the task refuses, naming
// it (when both runs see each other, both step back, which is safe).
func (c *cluster) aloneInAdding(ctx context.Context, resp *clientv3.MemberAddResponse) error {
	var other *etcdserverpb.Member
	for _, m := range resp.Members {
		if m.ID != resp.Member.ID && !started(m) {
			other = m
			break
		}
	}
	if other == nil {
		return nil
	}
	err := c.retry(ctx, transient, func(cctx context.Context) error {
		_, err := c.cli.MemberRemove(cctx, resp.Member.ID)
		return err
	})
	if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		return c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("member %x (peer URLs %s) was added at the same "+
			"time as %s (%x), and removing %s again failed: %w; remove one of them (state: absent, id)", other.ID,
			strings.Join(other.PeerURLs, ","), c.spec.Name, resp.Member.ID, c.spec.Name, err))
	}
	return fmt.Errorf("member %x (peer URLs %s) was added at the same time (another run?) and has not started; %s (%x) "+
		"was removed again so that membership changes go one at a time: start etcd on that member's host (or remove it "+
		"with state: absent, id: %x), then add %s", other.ID, strings.Join(other.PeerURLs, ","), c.spec.Name,
		resp.Member.ID, other.ID, c.spec.Name)
}

// serverVersion is the version of the first endpoint that answers a status. A learner add goes by
// it: a server older than 3.4 does not know the learner flag and would silently add a voter.
func (c *cluster) serverVersion(ctx context.Context) (string, error) {
	var lastErr error
	for _, ep := range c.cli.Endpoints() {
		cctx, cancel := c.conn.Ctx(ctx)
		st, err := c.cli.Status(cctx, ep)
		cancel()
		if err == nil {
			return st.Version, nil
		}
		lastErr = err
	}
	return "", c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("status: %w", lastErr))
}

func (c *cluster) explainAdd(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyLearners):
		return fmt.Errorf("etcd refused to add %s: %w; the server allows that many learners at most "+
			"(--max-learners on etcd 3.6, 1 before): promote or remove the pending learner first", c.spec.Name, err)
	case errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrMemberNotEnoughStarted):
		return fmt.Errorf("etcd refused to add %s: %w (still after %s); adding a voter needs enough started, "+
			"connected voting members for the new quorum: start the stopped members, or add it as a learner (learner: true)",
			c.spec.Name, err, c.spec.Timeout)
	case errors.Is(err, rpctypes.ErrPeerURLExist):
		return fmt.Errorf("etcd refused to add %s: %w; another member uses one of %s", c.spec.Name, err, strings.Join(c.spec.PeerURLs, ","))
	}
	return c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("member add: %w", err))
}

// update changes the peer URLs of the member named like the spec (seed 000: after a
// force-new-cluster the first member still advertises its old peer URL).
func (c *cluster) update(ctx context.Context, m *etcdserverpb.Member) (*Result, error) {
	if c.task.CheckMode {
		m.PeerURLs = c.spec.PeerURLs
		return c.presentResult("updated", m)
	}
	var resp *clientv3.MemberUpdateResponse
	err := c.retryTransient(ctx, func(cctx context.Context) (err error) {
		resp, err = c.cli.MemberUpdate(cctx, m.ID, c.spec.PeerURLs)
		return err
	})
	if err != nil {
		return nil, c.conn.Explain(strings.Join(c.conn.Endpoints, ","), fmt.Errorf("member update %s (%x): %w", m.Name, m.ID, err))
	}
	c.members = resp.Members
	for _, u := range c.members {
		if u.ID == m.ID {
			return c.presentResult("updated", u)
		}
	}
	return nil, fmt.Errorf("member %s (%x) is missing from the member list after its update; someone removed it meanwhile", m.Name, m.ID)
}

// presentResult reports the member with the etcd.conf settings its host needs, as `etcdctl member
// add` prints them: the new member still has no name in etcd, so the spec's name stands in.
func (c *cluster) presentResult(op string, target *etcdserverpb.Member) (*Result, error) {
	var ic []string
	for _, m := range c.members {
		name := m.Name
		if m == target || (m.ID != 0 && m.ID == target.ID) {
			name = c.spec.Name
		}
		if name == "" {
			c.task.Warn("member %x has not started and has no name yet; initial_cluster lists it without one", m.ID)
		}
		for _, u := range m.PeerURLs {
			ic = append(ic, name+"="+u)
		}
	}
	self := info(target)
	self.Name = c.spec.Name
	res := &Result{Operation: op, Member: &self, Members: c.view(), InitialCluster: strings.Join(ic, ",")}
	res.Env = map[string]string{
		"ETCD_NAME":                        c.spec.Name,
		"ETCD_INITIAL_CLUSTER":             res.InitialCluster,
		"ETCD_INITIAL_ADVERTISE_PEER_URLS": strings.Join(target.PeerURLs, ","),
		"ETCD_INITIAL_CLUSTER_STATE":       "existing",
	}
	return res, nil
}

func displayName(m *etcdserverpb.Member) string {
	if m.Name == "" {
		return "(unstarted)"
	}
	return m.Name
}

// retryTransient runs op until it succeeds, fails with an error that is not one of etcd's
// transient refusals, or the spec's timeout passes. etcd 3.4+ answers "unhealthy cluster" to
// membership changes until every voter has been connected for about 5 s, e.g. just after a start.
func (c *cluster) retryTransient(ctx context.Context, op func(context.Context) error) error {
	return c.retry(ctx, transient, op)
}

// retry runs op until it succeeds, fails with an error retryable does not accept, or the spec's
// timeout passes.
func (c *cluster) retry(ctx context.Context, retryable func(error) bool, op func(context.Context) error) error {
	deadline := time.Now().Add(c.spec.Timeout)
	for {
		cctx, cancel := c.conn.Ctx(ctx)
		err := op(cctx)
		cancel()
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func transient(err error) bool {
	return errors.Is(err, rpctypes.ErrUnhealthy) || errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) ||
		errors.Is(err, rpctypes.ErrMemberLearnerNotReady) || stopping(err)
}

// stopping: the answer of a member that stops (e.g. it has just been removed); the request was not
// applied, another endpoint takes the retry.
func stopping(err error) bool {
	return errors.Is(err, rpctypes.ErrStopped) || errors.Is(err, rpctypes.ErrNoLeader) ||
		strings.Contains(err.Error(), "raft: stopped")
}

// removeRetryable: besides the transient refusals, a connection dropped by a member as it stops (the
// removal may have been applied: a retry then finds the member gone).
func removeRetryable(err error) bool {
	return transient(err) || status.Code(err) == codes.Unavailable
}

// addRetryable: as removeRetryable (an applied add makes a retry find the peer URL taken), and
// "member not found" from a member that has not yet applied a removal it answers for (the add was not
// applied).
func addRetryable(err error) bool {
	return removeRetryable(err) || errors.Is(err, rpctypes.ErrMemberNotFound)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
