package v2data

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/etcdops/etcd/pkg/v2disk"
)

// v2Dest copies node for node into a v2 store: directories (empty ones too) with their TTL, leaves
// with their value and remaining TTL. v2 has no batching, so throughput comes from parallel writes.
type v2Dest struct {
	kapi        clientv2.KeysAPI // writes
	reader      *v2Reader        // reads
	timeout     time.Duration
	concurrency int
	sem         chan struct{} // bounds in-flight leaf writes across all directories
	stats       WriteStats
}

func newV2Dest(kapi clientv2.KeysAPI, reader *v2Reader, timeout time.Duration, concurrency int) *v2Dest {
	return &v2Dest{kapi: kapi, reader: reader, timeout: timeout, concurrency: concurrency, sem: make(chan struct{}, concurrency)}
}

func (d *v2Dest) Stats() *WriteStats { return &d.stats }
func (d *v2Dest) Close()             {}
func (d *v2Dest) Flush(context.Context) error {
	return nil
}

func (d *v2Dest) Empty(ctx context.Context, scope Scope) (bool, error) {
	for _, p := range scope.Prefixes {
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		resp, err := d.kapi.Get(rctx, p, nil)
		cancel()
		if clientv2.IsKeyNotFound(err) {
			continue
		}
		if err != nil { // the destination's first request: a wrong endpoint, CA or certificate shows here
			return false, d.reader.explain(strings.Join(d.reader.conn.Endpoints, ","), err)
		}
		if p != "/" {
			return false, nil
		}
		for _, c := range resp.Node.Nodes {
			if scope.Contains(c.Key) {
				return false, nil
			}
		}
	}
	return true, nil
}

func (d *v2Dest) Apply(ctx context.Context, dir Node, kids []Node, compare, dry bool) error {
	have := map[string]Node{}
	if compare {
		var err error
		if have, err = d.existing(ctx, dir, kids); err != nil {
			return err
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, k := range kids {
		e, ok := have[k.Key]
		if ok && e.Dir == k.Dir && e.Value == k.Value && e.Expiration.IsZero() == k.Expiration.IsZero() {
			d.stats.Identical.Add(1)
			continue
		}
		if ok && e.Dir != k.Dir {
			return fmt.Errorf("destination %s is a %s where the source has a %s; remove it from the destination "+
				"and run again", k.Key, kind(e), kind(k))
		}
		var ttl time.Duration
		if !k.Expiration.IsZero() {
			if ttl = remaining(k.Expiration, time.Now()); ttl == 0 {
				d.stats.Expired.Add(1)
				continue
			}
		}
		if k.Dir {
			// Synchronously: the walk lists (and copies into) this directory right after.
			if !dry {
				opts := &clientv2.SetOptions{Dir: true, TTL: ttl}
				if ok {
					opts.PrevExist = clientv2.PrevExist // only the TTL differs: update it in place
				}
				if err := d.set(ctx, k.Key, "", opts); err != nil {
					return err
				}
			}
			d.stats.Dirs.Add(1)
			continue
		}
		if dry {
			d.stats.Keys.Add(1)
			continue
		}
		d.sem <- struct{}{}
		wg.Add(1)
		go func(k Node) {
			defer func() { <-d.sem; wg.Done() }()
			if err := d.set(ctx, k.Key, k.Value, &clientv2.SetOptions{TTL: ttl}); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			d.stats.Keys.Add(1)
		}(k)
	}
	wg.Wait()
	return first
}

func kind(n Node) string {
	if n.Dir {
		return "directory"
	}
	return "key"
}

func (d *v2Dest) set(ctx context.Context, key, value string, opts *clientv2.SetOptions) error {
	rctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if _, err := d.kapi.Set(rctx, key, value, opts); err != nil {
		return fmt.Errorf("destination: writing %s: %w", key, err)
	}
	return nil
}

// existing reads what the destination holds for dir's children: its listing plus, by name, the
// hidden children a listing never shows.
func (d *v2Dest) existing(ctx context.Context, dir Node, kids []Node) (map[string]Node, error) {
	have := map[string]Node{}
	w := &walker{reader: d.reader, Timeout: d.timeout}
	var hidden []string
	for _, k := range kids {
		if name := path.Base(k.Key); v2disk.IsHidden(name) {
			hidden = append(hidden, name)
		}
	}
	listed, err := w.list(ctx, Node{Key: dir.Key, Dir: true}, Scope{Prefixes: []string{"/"}}, hidden)
	if err != nil {
		return nil, fmt.Errorf("destination: reading %s: %w", dir.Key, err)
	}
	for _, n := range listed {
		have[n.Key] = n
	}
	return have, nil
}

func (d *v2Dest) Tally(ctx context.Context, scope Scope, hidden []string, skip func(string) bool, t *Tally) error {
	w := &walker{reader: d.reader, Scope: scope, Hidden: func() ([]string, error) { return hidden, nil },
		Concurrency: d.concurrency, Timeout: d.timeout}
	return w.Walk(ctx, func(_ context.Context, _ Node, kids []Node) error {
		for _, k := range kids {
			if !skip(k.Key) {
				t.Add(k)
			}
		}
		return nil
	})
}
