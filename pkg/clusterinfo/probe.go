package clusterinfo

import (
	"context"
	"errors"
	"sync"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EndpointStatus is one endpoint's answer to `etcdctl endpoint status` plus `endpoint health`.
// When the endpoint cannot be reached, Reachable is false and Error says why; the numbers are zero.
type EndpointStatus struct {
	Endpoint         string   `json:"endpoint"`
	Reachable        bool     `json:"reachable"`
	MemberID         string   `json:"member_id"`
	Version          string   `json:"version"`
	DBSize           int64    `json:"db_size"`
	DBSizeInUse      int64    `json:"db_size_in_use"`
	Leader           string   `json:"leader"` // hex id of the leader this member follows; "" when it knows none
	IsLeader         bool     `json:"is_leader"`
	IsLearner        bool     `json:"is_learner"`
	RaftTerm         uint64   `json:"raft_term"`
	RaftIndex        uint64   `json:"raft_index"`
	RaftAppliedIndex uint64   `json:"raft_applied_index"`
	Errors           []string `json:"errors"` // what the member itself reports (e.g. an alarm)
	// Healthy means a linearizable read through this endpoint succeeded, as `etcdctl endpoint
	// health` checks it: the member is up and part of a quorum with a leader.
	Healthy bool   `json:"healthy"`
	Error   string `json:"error"`
}

// Prober asks single endpoints for status and health. It keeps one client per endpoint, so a
// caller that polls (convergence wait) does not redo the TLS handshake every time; a client that
// failed is dropped and redialled on the next call.
type Prober struct {
	opts    *etcdconn.Options
	mu      sync.Mutex
	clients map[string]*clientv3.Client
}

// NewProber returns a Prober using the connection options' TLS and auth settings.
func NewProber(o *etcdconn.Options) *Prober {
	return &Prober{opts: o, clients: map[string]*clientv3.Client{}}
}

// Close closes every cached client.
func (p *Prober) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ep, cli := range p.clients {
		cli.Close()
		delete(p.clients, ep)
	}
}

func (p *Prober) client(ep string) (*clientv3.Client, error) {
	p.mu.Lock()
	cli := p.clients[ep]
	p.mu.Unlock()
	if cli != nil {
		return cli, nil
	}
	cli, err := p.opts.V3Single(ep)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.clients[ep] = cli
	p.mu.Unlock()
	return cli, nil
}

func (p *Prober) drop(ep string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cli := p.clients[ep]; cli != nil {
		cli.Close()
		delete(p.clients, ep)
	}
}

// Probe reads one endpoint's status and, when health is set, checks it with a linearizable read.
// Each request is bounded by command_timeout (and ctx).
func (p *Prober) Probe(ctx context.Context, ep string, health bool) EndpointStatus {
	st := EndpointStatus{Endpoint: ep, Errors: []string{}}
	if ep == "" {
		// A member added but never started has no client URL; dialling "" would only wait out
		// dial_timeout.
		st.Error = "no client URL: the member has not started"
		return st
	}
	cli, err := p.client(ep)
	if err != nil {
		st.Error = err.Error() // already explained by etcdconn
		return st
	}
	sctx, cancel := p.opts.Ctx(ctx)
	resp, err := cli.Status(sctx, ep)
	cancel()
	if err != nil {
		p.drop(ep)
		st.Error = p.opts.Explain(ep, err).Error()
		return st
	}
	st.Reachable = true
	st.MemberID = HexID(resp.Header.MemberId)
	st.Version = resp.Version
	st.DBSize = resp.DbSize
	st.DBSizeInUse = resp.DbSizeInUse
	if resp.Leader != 0 {
		st.Leader = HexID(resp.Leader)
	}
	st.IsLeader = resp.Leader != 0 && resp.Leader == resp.Header.MemberId
	st.IsLearner = resp.IsLearner
	st.RaftTerm = resp.RaftTerm
	st.RaftIndex = resp.RaftIndex
	st.RaftAppliedIndex = resp.RaftAppliedIndex
	if resp.Errors != nil {
		st.Errors = resp.Errors
	}
	if health {
		hctx, cancel := p.opts.Ctx(ctx)
		_, err := cli.Get(hctx, "health")
		cancel()
		// etcdctl endpoint health counts "permission denied" as healthy: the read reached a
		// member that has a quorum, only the user may not read that key.
		if err == nil || errors.Is(err, rpctypes.ErrPermissionDenied) {
			st.Healthy = true
		} else {
			st.Error = p.opts.Explain(ep, err).Error()
		}
	}
	return st
}

// ProbeAll probes endpoints in parallel and returns their statuses in the given order.
func (p *Prober) ProbeAll(ctx context.Context, endpoints []string, health bool) []EndpointStatus {
	out := make([]EndpointStatus, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = p.Probe(ctx, ep, health)
		}()
	}
	wg.Wait()
	return out
}
