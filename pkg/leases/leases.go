// Package leases attaches leases to existing v3 keys by prefix (what `oc adm migrate etcd-ttl` did
// after a v2→v3 migration), with guarded batched writes: a key changed by someone else meanwhile is
// reported, never overwritten, and keys that already have a lease are left alone.
package leases

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is one group of keys and the lease TTL they get.
type Prefix struct {
	Prefix string        `arg:"prefix" required:"true"`
	TTL    time.Duration `arg:"ttl" required:"true"`
}

// OpenShiftDefaults are the TTLs OpenShift 3.x kept in v2 (the etcd-ttl steps of the v3 migration).
var OpenShiftDefaults = []Prefix{
	{"/kubernetes.io/events", time.Hour},
	{"/kubernetes.io/masterleases", 10 * time.Second},
	{"/openshift.io/oauth/accesstokens", 86400 * time.Second},
	{"/openshift.io/oauth/authorizetokens", 500 * time.Second},
	{"/openshift.io/leases/controllers", 10 * time.Second},
}

// Spec configures Attach.
type Spec struct {
	Prefixes []Prefix
	// Force re-leases keys that already have a lease.
	Force bool
	// MaxKeysPerLease spreads a prefix over several leases, so one lease expiring or revoked never
	// deletes a whole prefix in one blocking transaction.
	MaxKeysPerLease int
	// MaxTxnOps is the guarded puts per transaction (≤ the server's --max-txn-ops, 128 by default).
	MaxTxnOps int
	// PageSize is the keys per range read.
	PageSize    int
	Concurrency int
	Timeout     time.Duration
}

// Validate names the bad parameter and the fix.
func (s *Spec) Validate() error {
	for i, p := range s.Prefixes {
		param := fmt.Sprintf("prefixes[%d]", i)
		if strings.Trim(p.Prefix, "/") == "" {
			return &module.ParamError{Param: param + ".prefix", Msg: fmt.Sprintf("is %q, which covers every key; name the "+
				"keys that had a v2 TTL, e.g. /kubernetes.io/events", p.Prefix)}
		}
		if p.TTL < time.Second || p.TTL%time.Second != 0 {
			return &module.ParamError{Param: param + ".ttl", Msg: fmt.Sprintf("is %s; leases have whole-second TTLs "+
				"of at least 1s, e.g. 10s or 3600", p.TTL)}
		}
	}
	switch {
	case s.MaxKeysPerLease < 1:
		return &module.ParamError{Param: "max_keys_per_lease", Msg: "must be at least 1, e.g. 1000"}
	case s.MaxTxnOps < 1:
		return &module.ParamError{Param: "max_txn_ops", Msg: "must be at least 1 and at most the server's --max-txn-ops (128 by default)"}
	case s.PageSize < 1:
		return &module.ParamError{Param: "page_size", Msg: "must be at least 1, e.g. 1000"}
	case s.Concurrency < 1:
		return &module.ParamError{Param: "concurrency", Msg: "must be at least 1, e.g. 8"}
	}
	return nil
}

// PrefixResult is what happened to one prefix.
type PrefixResult struct {
	Prefix        string   `json:"prefix"`
	TTL           int64    `json:"ttl"`
	KeysSeen      int64    `json:"keys_seen"`
	Attached      int64    `json:"attached"`
	AlreadyLeased int64    `json:"already_leased"`
	Conflicts     int64    `json:"conflicts"`
	ConflictKeys  []string `json:"conflict_keys,omitempty"`
	LeasesGranted int64    `json:"leases_granted"`
}

// Result is the module result.
type Result struct {
	Prefixes  []PrefixResult `json:"prefixes"`
	Attached  int64          `json:"attached"`
	Conflicts int64          `json:"conflicts"`
	// ResentValues: a member older than etcd 3.3 (or of unknown version) made every put carry the
	// key's value again instead of keeping it with ignore_value.
	ResentValues   bool    `json:"resent_values"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	KeysPerSecond  float64 `json:"keys_per_second"`
}

// Attach leases the keys under each prefix. In check mode it counts what it would attach and grant.
func Attach(ctx context.Context, t *module.Task, cli *clientv3.Client, s Spec) (*Result, error) {
	began := time.Now()
	res := &Result{ResentValues: !ignoreValueSafe(ctx, cli, s.Timeout)}
	var seen int64
	for _, p := range s.Prefixes {
		pr, err := attachPrefix(ctx, t.CheckMode, res.ResentValues, cli, s, p)
		res.Prefixes = append(res.Prefixes, pr)
		res.Attached += pr.Attached
		res.Conflicts += pr.Conflicts
		seen += pr.KeysSeen
		res.ElapsedSeconds = time.Since(began).Seconds()
		if res.Attached > 0 {
			t.Changed()
		}
		if err != nil {
			return res, &module.Error{Err: fmt.Errorf("%s: %w", p.Prefix, err), Result: res}
		}
	}
	if res.ElapsedSeconds > 0 {
		res.KeysPerSecond = float64(seen) / res.ElapsedSeconds
	}
	if res.Conflicts > 0 {
		t.Warn("%d keys changed while their lease was being attached and were left as they are (see conflict_keys); "+
			"run again once their writers are stopped", res.Conflicts)
	}
	return res, nil
}

type target struct {
	key   string
	rev   int64
	lease clientv3.LeaseID
	value []byte // sent again only when a member cannot keep it (see ignoreValueSafe)
}

// attachPrefix pages through the prefix (keys only, unless values must be resent), grants leases as
// keys fill them, and hands batches of guarded puts to concurrent writers.
func attachPrefix(ctx context.Context, dry, resend bool, cli *clientv3.Client, s Spec, p Prefix) (PrefixResult, error) {
	pr := PrefixResult{Prefix: p.Prefix, TTL: int64(p.TTL / time.Second)}
	var attached, conflicts atomic.Int64
	var mu sync.Mutex
	var conflictKeys []string
	var werr error
	batches := make(chan []target, s.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < s.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				n, lost, err := guardedAttach(ctx, cli, s.Timeout, b)
				attached.Add(n)
				conflicts.Add(int64(len(lost)))
				mu.Lock()
				conflictKeys = append(conflictKeys, lost...)
				if err != nil && werr == nil {
					werr = err
				}
				mu.Unlock()
			}
		}()
	}

	var grants *leaseSupply
	if !dry {
		grants = supplyLeases(ctx, cli, p.TTL, s.Timeout)
		defer grants.stop()
	}
	var (
		lease   clientv3.LeaseID
		inLease = s.MaxKeysPerLease // forces a grant for the first key
		batch   []target
		rerr    error
	)
	end := clientv3.GetPrefixRangeEnd(p.Prefix)
	for start := p.Prefix; rerr == nil; {
		rctx, cancel := context.WithTimeout(ctx, s.Timeout)
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.PageSize))}
		if !resend {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		resp, err := cli.Get(rctx, start, opts...)
		cancel()
		if err != nil {
			rerr = err
			break
		}
		for _, kv := range resp.Kvs {
			pr.KeysSeen++
			if kv.Lease != 0 && !s.Force {
				pr.AlreadyLeased++
				continue
			}
			if inLease == s.MaxKeysPerLease {
				inLease = 0
				pr.LeasesGranted++
				if !dry {
					if lease, err = grants.next(); err != nil {
						rerr = err
						break
					}
				}
			}
			inLease++
			if dry {
				attached.Add(1)
				continue
			}
			batch = append(batch, target{key: string(kv.Key), rev: kv.ModRevision, lease: lease, value: kv.Value})
			if len(batch) == s.MaxTxnOps {
				batches <- batch
				batch = nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if len(batch) > 0 && rerr == nil {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	pr.Attached, pr.Conflicts = attached.Load(), conflicts.Load()
	sort.Strings(conflictKeys)
	pr.ConflictKeys = conflictKeys[:min(len(conflictKeys), 20)]
	if rerr == nil {
		rerr = werr
	}
	return pr, rerr
}

// guardedAttach attaches each key's lease only if the key is still at the revision it was read at
// (put with ignore_value keeps the value; or the value read with that revision is put again). One transaction holds the whole batch; when a guard
// fails, the else branch reads the batch back, the changed keys are dropped as conflicts and the
// rest is tried again.
func guardedAttach(ctx context.Context, cli *clientv3.Client, timeout time.Duration, b []target) (int64, []string, error) {
	var lost []string
	for len(b) > 0 {
		cmps := make([]clientv3.Cmp, len(b))
		puts := make([]clientv3.Op, len(b))
		gets := make([]clientv3.Op, len(b))
		for i, k := range b {
			cmps[i] = clientv3.Compare(clientv3.ModRevision(k.key), "=", k.rev)
			if k.value != nil {
				puts[i] = clientv3.OpPut(k.key, string(k.value), clientv3.WithLease(k.lease))
			} else {
				puts[i] = clientv3.OpPut(k.key, "", clientv3.WithIgnoreValue(), clientv3.WithLease(k.lease))
			}
			gets[i] = clientv3.OpGet(k.key, clientv3.WithKeysOnly())
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := cli.Txn(rctx).If(cmps...).Then(puts...).Else(gets...).Commit()
		cancel()
		if err != nil {
			err = fmt.Errorf("attaching leases to %d keys from %s: %w", len(b), b[0].key, err)
			if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
				err = &module.ParamError{Param: "max_txn_ops", Msg: fmt.Sprintf("%v; lower max_txn_ops to at most the "+
					"server's --max-txn-ops (and so that a transaction stays below --max-request-bytes)", err)}
			}
			return 0, lost, err
		}
		if resp.Succeeded {
			return int64(len(b)), lost, nil
		}
		var still []target
		for i, k := range b {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 1 && kvs[0].ModRevision == k.rev {
				still = append(still, k)
			} else {
				lost = append(lost, k.key)
			}
		}
		b = still
	}
	return 0, lost, nil
}

// ignoreValueSafe reports whether every member keeps a key's value on a put with ignore_value, i.e.
// runs etcd 3.3 or later. An older member does not know the flag, drops it, and stores the empty
// value sent with it: attaching leases that way would erase every value. A member whose version
// cannot be read counts as older.
func ignoreValueSafe(ctx context.Context, cli *clientv3.Client, timeout time.Duration) bool {
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ml, err := cli.MemberList(mctx)
	if err != nil {
		return false
	}
	for _, m := range ml.Members {
		if len(m.ClientURLs) == 0 {
			return false // not started yet: its version is unknown
		}
		st, err := cli.Status(mctx, m.ClientURLs[0])
		if err != nil || !etcdconn.VersionAtLeast(st.Version, 3, 3) {
			return false
		}
	}
	return true
}

// leaseSupply grants leases one ahead of their use: a grant is a raft round, which behind the
// writers' transactions takes milliseconds, and the reader would wait for each while the writers
// run dry. Those granted but never used are revoked at the end. Stopping never cancels a grant in
// flight: the server may have granted it with nobody left to know its id.
type leaseSupply struct {
	ch   chan grant
	quit chan struct{}
	done chan struct{}
	cli  *clientv3.Client
	tmo  time.Duration
}

type grant struct {
	id  clientv3.LeaseID
	err error
}

func supplyLeases(ctx context.Context, cli *clientv3.Client, ttl, timeout time.Duration) *leaseSupply {
	l := &leaseSupply{ch: make(chan grant, 1), quit: make(chan struct{}), done: make(chan struct{}), cli: cli, tmo: timeout}
	go func() {
		defer close(l.done)
		defer close(l.ch)
		for {
			select {
			case <-l.quit:
				return
			default:
			}
			gctx, cancel := context.WithTimeout(ctx, timeout)
			g, err := cli.Grant(gctx, int64(ttl/time.Second))
			cancel()
			if err != nil {
				l.ch <- grant{err: fmt.Errorf("granting a %s lease: %w", ttl, err)} // taken by the reader, or by stop
				return
			}
			select {
			case l.ch <- grant{id: g.ID}:
			case <-l.quit:
				l.revoke(g.ID)
				return
			}
		}
	}()
	return l
}

func (l *leaseSupply) next() (clientv3.LeaseID, error) {
	g, ok := <-l.ch
	if !ok {
		return 0, errors.New("lease grants stopped")
	}
	return g.id, g.err
}

// stop ends the supply and revokes the leases granted ahead.
func (l *leaseSupply) stop() {
	close(l.quit)
	for g := range l.ch { // until the supplier, done with its grant in flight, closes it
		l.revoke(g.id)
	}
	<-l.done
}

func (l *leaseSupply) revoke(id clientv3.LeaseID) {
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.tmo)
	defer cancel()
	_, _ = l.cli.Revoke(ctx, id) // an unused lease holds no keys; failing to revoke it only leaves it to expire
}
