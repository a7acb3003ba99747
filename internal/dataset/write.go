package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writers is how many requests WriteV2/WriteV3 keep in flight (8 parallel writers reach about 2.6× a
// single sequential writer on this machine kind; more adds little).
const Writers = 8

// WriteV2 stores a v2 manifest: directories first (TTL and empty ones), then the keys, in parallel.
func WriteV2(ctx context.Context, kapi clientv2.KeysAPI, m *Manifest) error {
	if m.API != "v2" {
		return fmt.Errorf("manifest is for %s, not v2", m.API)
	}
	keys := m.Keys()
	for _, e := range keys {
		if e.value == nil {
			return fmt.Errorf("%s: a manifest loaded from a file has no values; write a generated one", e.Key)
		}
	}
	for _, e := range m.Entries {
		if e.Dir {
			if err := mkdirV2(ctx, kapi, e.Key, time.Duration(e.TTL)*time.Second); err != nil {
				return fmt.Errorf("v2 mkdir %s: %w", e.Key, err)
			}
		}
	}
	return parallel(ctx, keys, func(ctx context.Context, e *Entry) error {
		_, err := kapi.Set(ctx, e.Key, string(e.value), &clientv2.SetOptions{TTL: time.Duration(e.TTL) * time.Second})
		if err != nil {
			return fmt.Errorf("v2 set %s: %w", e.Key, err)
		}
		return nil
	})
}

// mkdirV2 creates a directory unless an earlier seeding made it (v2 refuses to set a directory
// over an existing one).
func mkdirV2(ctx context.Context, kapi clientv2.KeysAPI, key string, ttl time.Duration) error {
	if resp, err := kapi.Get(ctx, key, nil); err == nil && resp.Node.Dir {
		return nil
	}
	_, err := kapi.Set(ctx, key, "", &clientv2.SetOptions{Dir: true, TTL: ttl})
	return err
}

// WriteV3 stores a v3 manifest: TTL keys get one lease per TTL prefix (as the migration runbook
// attaches them); puts go 128 per transaction, Writers transactions in flight.
func WriteV3(ctx context.Context, cli *clientv3.Client, m *Manifest) error {
	if m.API != "v3" {
		return fmt.Errorf("manifest is for %s, not v3", m.API)
	}
	leases := map[string]clientv3.LeaseID{}
	for _, p := range m.Prefixes {
		ttl := int64(seedTTL / time.Second)
		l, err := cli.Grant(ctx, ttl)
		if err != nil {
			return fmt.Errorf("v3 lease grant for %s: %w", p.Prefix, err)
		}
		leases[p.Prefix] = l.ID
	}
	keys := m.Keys()
	var batches [][]*Entry
	for len(keys) > 0 {
		n := min(128, len(keys))
		batches = append(batches, keys[:n])
		keys = keys[n:]
	}
	return parallel(ctx, batches, func(ctx context.Context, batch []*Entry) error {
		ops := make([]clientv3.Op, 0, len(batch))
		for _, e := range batch {
			var opts []clientv3.OpOption
			if e.TTL > 0 {
				opts = append(opts, clientv3.WithLease(leases[e.Prefix]))
			}
			ops = append(ops, clientv3.OpPut(e.Key, string(e.value), opts...))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("v3 txn of %d puts from %s: %w", len(ops), batch[0].Key, err)
		}
		return nil
	})
}

func parallel[T any](ctx context.Context, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan T)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < Writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := fn(ctx, it); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case ch <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// Report is the outcome of comparing a cluster with a manifest.
type Report struct {
	Checked    int      `json:"checked"`
	Missing    []string `json:"missing,omitempty"`      // keys the manifest has and the cluster lacks
	Mismatched []string `json:"mismatched,omitempty"`   // present with another value
	NoLease    []string `json:"no_lease,omitempty"`     // v3: TTL keys without a lease
	Leasable   int      `json:"leasable"`               // v3: keys that expire in v2 (TTL keys, keys in TTL dirs)
	Leased     int      `json:"leased"`                 // v3: of those, how many carry a lease
	Dirs       []string `json:"missing_dirs,omitempty"` // v2: directories missing
}

// OK reports whether every key is present with its value (and, if leases is set, every TTL key leased).
func (r *Report) OK(leases bool) bool {
	return len(r.Missing) == 0 && len(r.Mismatched) == 0 && len(r.Dirs) == 0 && (!leases || len(r.NoLease) == 0)
}

func (r *Report) String() string {
	short := func(s []string) string {
		sort.Strings(s)
		if len(s) > 5 {
			return strings.Join(s[:5], ", ") + fmt.Sprintf(" … (%d)", len(s))
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("checked %d keys: %d missing [%s], %d mismatched [%s], %d of %d expiring keys leased, not: [%s], %d dirs missing [%s]",
		r.Checked, len(r.Missing), short(r.Missing), len(r.Mismatched), short(r.Mismatched), r.Leased,
		r.Leasable, short(r.NoLease), len(r.Dirs), short(r.Dirs))
}

func (r *Report) compare(e *Entry, found bool, value []byte) {
	r.Checked++
	if !found {
		r.Missing = append(r.Missing, e.Key)
		return
	}
	sum := sha256.Sum256(value)
	if hex.EncodeToString(sum[:]) != e.SHA256 {
		r.Mismatched = append(r.Mismatched, e.Key)
	}
}

// VerifyV3 compares the cluster's v3 keyspace with the manifest (v2 manifests too: that is what a
// migration must produce). skipHidden leaves out keys with "_" segments.
func VerifyV3(ctx context.Context, cli *clientv3.Client, m *Manifest, skipHidden bool) (*Report, error) {
	r := &Report{}
	var mu sync.Mutex
	err := parallel(ctx, m.Keys(), func(ctx context.Context, e *Entry) error {
		if skipHidden && e.Hidden {
			return nil
		}
		resp, err := cli.Get(ctx, e.Key)
		if err != nil {
			return fmt.Errorf("v3 get %s: %w", e.Key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(resp.Kvs) == 0 {
			r.compare(e, false, nil)
			return nil
		}
		kv := resp.Kvs[0]
		r.compare(e, true, kv.Value)
		if e.TTL > 0 || e.InDir != "" {
			r.Leasable++
			if kv.Lease != 0 {
				r.Leased++
			} else {
				r.NoLease = append(r.NoLease, e.Key)
			}
		}
		return nil
	})
	return r, err
}

// VerifyV2 compares the cluster's v2 keyspace with a v2 manifest, directories included.
func VerifyV2(ctx context.Context, kapi clientv2.KeysAPI, m *Manifest) (*Report, error) {
	r := &Report{}
	var mu sync.Mutex
	entries := make([]*Entry, len(m.Entries))
	for i := range m.Entries {
		entries[i] = &m.Entries[i]
	}
	err := parallel(ctx, entries, func(ctx context.Context, e *Entry) error {
		resp, err := kapi.Get(ctx, e.Key, &clientv2.GetOptions{Quorum: true})
		if err != nil && !clientv2.IsKeyNotFound(err) {
			return fmt.Errorf("v2 get %s: %w", e.Key, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if e.Dir {
			if err != nil || !resp.Node.Dir {
				r.Dirs = append(r.Dirs, e.Key)
			}
			return nil
		}
		if err != nil {
			r.compare(e, false, nil)
			return nil
		}
		r.compare(e, true, []byte(resp.Node.Value))
		return nil
	})
	return r, err
}
