package member

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errLearnerEndpoint is how a learner refuses requests it does not serve (linearizable reads; the
// member list on etcd 3.5+).
var errLearnerEndpoint = rpctypes.Error(rpctypes.ErrGPRCNotSupportedForLearner)

// refresh reads the member list through the first endpoint that serves it, after a linearizable
// read through that same endpoint: etcd 3.4 answers member lists from the member's own state, and
// the barrier makes sure that state includes every change committed before (e.g. the promote the
// previous task made through another member). Learners' endpoints are then dropped.
func (c *cluster) refresh(ctx context.Context) error {
	var errs []string
	learnersOnly := true
	// Endpoints that failed before go last: a down member costs dial_timeout on every try.
	eps := c.cli.Endpoints()
	sort.SliceStable(eps, func(i, j int) bool { return !c.failed[eps[i]] && c.failed[eps[j]] })
	for _, ep := range eps {
		members, err := c.listVia(ctx, ep)
		if err == nil {
			c.members = members
			return c.avoidLearners()
		}
		c.failed[ep] = true
		if !errors.Is(err, errLearnerEndpoint) {
			learnersOnly = false
		}
		errs = append(errs, c.conn.Explain(ep, err).Error())
	}
	if learnersOnly {
		return c.onlyLearners()
	}
	return fmt.Errorf("member list: no endpoint answered: %s", strings.Join(errs, "; "))
}

func (c *cluster) listVia(ctx context.Context, ep string) ([]*etcdserverpb.Member, error) {
	cli, ok := c.single[ep]
	if !ok {
		var err error
		if cli, err = c.conn.V3Single(ep); err != nil {
			return nil, err
		}
		c.single[ep] = cli
	}
	cctx, cancel := c.conn.Ctx(ctx)
	defer cancel()
	// The permission check comes after the read barrier, so a user who may not read this key still
	// gets the barrier.
	if _, err := cli.Get(cctx, "etcdops-member-read-barrier", clientv3.WithCountOnly()); err != nil &&
		!errors.Is(err, rpctypes.ErrPermissionDenied) {
		return nil, err
	}
	resp, err := cli.MemberList(cctx)
	if err != nil {
		return nil, err
	}
	return resp.Members, nil
}

func (c *cluster) closeSingle() {
	for _, cli := range c.single {
		cli.Close()
	}
}

// avoidLearners drops learners' client URLs from the client's endpoints: a learner answers
// membership changes with "rpc not supported for learner", and a playbook often lists every host.
func (c *cluster) avoidLearners() error {
	learnerURLs := map[string]bool{}
	for _, m := range c.members {
		if m.IsLearner {
			for _, u := range normalizeAll(m.ClientURLs) {
				learnerURLs[u] = true
			}
		}
	}
	var keep []string
	for _, ep := range c.conn.Endpoints {
		if !learnerURLs[normalizeAll([]string{ep})[0]] {
			keep = append(keep, ep)
		}
	}
	switch {
	case len(keep) == 0:
		return c.onlyLearners()
	case len(keep) < len(c.conn.Endpoints):
		c.cli.SetEndpoints(keep...)
	}
	return nil
}

func (c *cluster) onlyLearners() error {
	return &module.ParamError{Param: c.conn.Prefix + "endpoints", Msg: fmt.Sprintf("%s reach only learners, which do not "+
		"serve membership changes; list a voting member's client URL", strings.Join(c.conn.Endpoints, ","))}
}
