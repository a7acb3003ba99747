package v2data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2disk"
)

// v3Dest turns every v2 leaf into a v3 key of the same name and value. Puts go in transactions of up
// to maxOps (the server's --max-txn-ops) and maxBytes (under its --max-request-bytes), sent by
// several writers; expiring leaves share leases by deadline.
type v3Dest struct {
	cli      *clientv3.Client
	kv       pb.KVClient
	timeout  time.Duration
	maxOps   int
	maxBytes int
	leases   *leasePool
	stats    WriteStats

	batches chan []item
	workers sync.WaitGroup

	mu      sync.Mutex
	pending []item
	bytes   int
	err     error // first write error; later Apply calls return it

	leaseOf map[string]int64 // the lease of each leased key the last Tally saw
	granted map[int64]int64  // a lease's granted TTL, as read (-1: not readable)
}

type item struct {
	key, value string
	expiry     time.Time
}

// A v3 key with a lease expires, but when is not read back (it would cost a request per lease);
// verification only needs to know that it does.
var leaseDeadlineUnknown = time.Unix(1<<40, 0)

func newV3Dest(cli *clientv3.Client, timeout time.Duration, concurrency, maxOps, maxKeysPerLease int,
	granularity time.Duration) *v3Dest {
	d := &v3Dest{cli: cli, kv: pb.NewKVClient(cli.ActiveConnection()), timeout: timeout, maxOps: maxOps, maxBytes: 1 << 20,
		batches: make(chan []item, concurrency)}
	d.leases = &leasePool{cli: cli, timeout: timeout, granularity: granularity, maxKeys: maxKeysPerLease,
		granted: &d.stats.LeasesGranted, open: map[int64]*poolLease{}}
	for i := 0; i < concurrency; i++ {
		d.workers.Add(1)
		go d.writer()
	}
	return d
}

func (d *v3Dest) Stats() *WriteStats { return &d.stats }
func (d *v3Dest) Close()             { d.cli.Close() }

func (d *v3Dest) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
}

func (d *v3Dest) writer() {
	defer d.workers.Done()
	for b := range d.batches {
		d.mu.Lock()
		failed := d.err != nil
		d.mu.Unlock()
		if failed {
			continue // drain
		}
		if err := d.commit(b); err != nil {
			d.fail(err)
			continue
		}
		d.stats.Keys.Add(int64(len(b)))
	}
}

// commit writes one batch in one transaction. It builds the request itself: clientv3.OpPut takes
// a string and copies it, and with every value passing through here that copy was a tenth of the
// copy's own CPU. The values are only read (marshalled) and stay alive until the call returns.
func (d *v3Dest) commit(b []item) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	ops := make([]*pb.RequestOp, len(b))
	for i, it := range b {
		put := &pb.PutRequest{Key: []byte(it.key), Value: unsafe.Slice(unsafe.StringData(it.value), len(it.value))}
		if !it.expiry.IsZero() {
			id, err := d.leases.get(ctx, it.expiry)
			if err != nil {
				return err
			}
			put.Lease = int64(id)
		}
		ops[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: put}}
	}
	if _, err := d.kv.Txn(ctx, &pb.TxnRequest{Success: ops}); err != nil {
		err = fmt.Errorf("destination: writing %d keys from %s: %w", len(b), b[0].key, rpctypes.Error(err))
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return &module.ParamError{Param: "max_txn_ops", Msg: fmt.Sprintf("%v; lower max_txn_ops to at most the "+
				"destination's --max-txn-ops", err)}
		}
		return err
	}
	return nil
}

func (d *v3Dest) Apply(ctx context.Context, _ Node, kids []Node, compare, dry bool) error {
	var leaves []Node
	for _, k := range kids {
		if !k.Dir {
			leaves = append(leaves, k)
		}
	}
	if compare {
		var err error
		if leaves, err = d.differing(ctx, leaves); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, k := range leaves {
		if !k.Expiry.IsZero() && remaining(k.Expiry, now) == 0 {
			d.stats.Expired.Add(1)
			continue
		}
		if dry {
			d.stats.Keys.Add(1)
			continue
		}
		if err := d.enqueue(ctx, item{key: k.Key, value: k.Value, expiry: k.Expiry}); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *v3Dest) enqueue(ctx context.Context, it item) error {
	size := len(it.key) + len(it.value)
	var full [][]item
	d.mu.Lock() // batches are cut under one lock hold, so none exceeds maxOps or maxBytes
	if len(d.pending) > 0 && d.bytes+size > d.maxBytes {
		full = append(full, d.pending)
		d.pending, d.bytes = nil, 0
	}
	d.pending = append(d.pending, it)
	d.bytes += size
	if len(d.pending) >= d.maxOps {
		full = append(full, d.pending)
		d.pending, d.bytes = nil, 0
	}
	d.mu.Unlock()
	for _, b := range full {
		select {
		case d.batches <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (d *v3Dest) Flush(ctx context.Context) error {
	d.mu.Lock()
	b := d.pending
	d.pending = nil
	d.mu.Unlock()
	if len(b) > 0 {
		d.batches <- b
	}
	close(d.batches)
	d.workers.Wait()
	return d.err
}

// differing reads the leaves' current state in the destination (a read-only txn per batch) and
// returns those not already identical: same value, and a lease exactly when the source expires.
func (d *v3Dest) differing(ctx context.Context, leaves []Node) ([]Node, error) {
	var out []Node
	for len(leaves) > 0 {
		n, size := 0, 0
		for n < len(leaves) && n < d.maxOps && (n == 0 || size+len(leaves[n].Value) <= 8<<20) {
			size += len(leaves[n].Value)
			n++
		}
		chunk := leaves[:n]
		leaves = leaves[n:]
		ops := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = clientv3.OpGet(k.Key)
		}
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		resp, err := d.cli.Txn(rctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("destination: reading %d keys from %s: %w", len(chunk), chunk[0].Key, err)
		}
		for i, k := range chunk {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 1 && string(kvs[0].Value) == k.Value && (kvs[0].Lease != 0) == !k.Expiry.IsZero() {
				d.stats.Identical.Add(1)
				continue
			}
			out = append(out, k)
		}
	}
	return out, nil
}

func (d *v3Dest) Empty(ctx context.Context, scope Scope) (bool, error) {
	empty := true
	for _, p := range scope.Prefixes {
		err := rangeScope(ctx, d.cli, d.timeout, p, true, func(key, _ string, _ int64) bool {
			if scope.Excluded(key) {
				return true
			}
			empty = false
			return false
		})
		if err != nil || !empty {
			return empty, err
		}
	}
	return true, nil
}

func (d *v3Dest) Tally(ctx context.Context, scope Scope, _ []string, skip func(string) bool, t *Tally) error {
	d.leaseOf = map[string]int64{}
	for _, p := range scope.Prefixes {
		err := rangeScope(ctx, d.cli, d.timeout, p, false, func(key, value string, lease int64) bool {
			if scope.Excluded(key) || skip(key) {
				return true
			}
			n := Node{Key: key, Value: value, Hidden: v2disk.IsHidden(key)}
			if lease != 0 {
				n.Expiration, n.Expiry = leaseDeadlineUnknown, leaseDeadlineUnknown
				d.leaseOf[key] = lease
			}
			t.Add(n)
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// leaseRanOut: key's lease, granted at grantedAt for what was left of the key's v2 TTL rounded up to
// granularity, has run out by now but for the rounding, so the v2 deadline it stands for may have passed.
func (d *v3Dest) leaseRanOut(ctx context.Context, key string, grantedAt time.Time, granularity time.Duration) bool {
	id, ok := d.leaseOf[key]
	if !ok {
		return false
	}
	if d.granted == nil {
		d.granted = map[int64]int64{}
	}
	ttl, ok := d.granted[id]
	if !ok {
		ttl = -1
		cctx, cancel := context.WithTimeout(ctx, d.timeout)
		if resp, err := d.cli.TimeToLive(cctx, clientv3.LeaseID(id)); err == nil && resp.GrantedTTL > 0 {
			ttl = resp.GrantedTTL
		}
		cancel()
		d.granted[id] = ttl
	}
	return ttl > 0 && !grantedAt.Add(time.Duration(ttl)*time.Second-granularity).After(time.Now())
}

// rangeScope pages through the v3 keys a v2 path covers (the path itself and everything under
// path/), never in one response: pages shrink when values are large. fn returns false to stop.
func rangeScope(ctx context.Context, cli *clientv3.Client, timeout time.Duration, p string, keysOnly bool,
	fn func(key, value string, lease int64) bool) error {
	ranges := [][2]string{{"/", clientv3.GetPrefixRangeEnd("/")}}
	if p != "/" {
		ranges = [][2]string{{p, p + "\x00"}, {p + "/", clientv3.GetPrefixRangeEnd(p + "/")}}
	}
	for _, r := range ranges {
		start, limit := r[0], int64(1000)
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(r[1]), clientv3.WithLimit(limit)}
			if keysOnly {
				opts = append(opts, clientv3.WithKeysOnly())
			}
			rctx, cancel := context.WithTimeout(ctx, timeout)
			resp, err := cli.Get(rctx, start, opts...)
			cancel()
			if status.Code(err) == codes.ResourceExhausted && limit > 1 {
				limit /= 4 // large values: a smaller page fits the message size limit
				continue
			}
			if err != nil {
				return fmt.Errorf("destination: reading %s: %w", start, err)
			}
			for _, kv := range resp.Kvs {
				if !fn(string(kv.Key), string(kv.Value), kv.Lease) {
					return nil
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return nil
}
