package v2data

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// changeWatch follows the source's v2 events from the index a copy started at, so the copy can tell
// expirations (expected: TTL keys run out while consumers are stopped) from writes (consumers still
// running: the copy is not a consistent picture and must fail).
type changeWatch struct {
	kapi  clientv2.KeysAPI
	scope Scope
	start uint64

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	last    uint64 // index of the newest event seen
	seen    int    // events seen (visible ones: hidden nodes raise no events on "/")
	expired map[string]bool
	changed []string // in-scope writes
	lost    error
}

// currentIndex is the source's v2 index (X-Etcd-Index) now.
func currentIndex(ctx context.Context, kapi clientv2.KeysAPI) (uint64, error) {
	resp, err := kapi.Get(ctx, "/", &clientv2.GetOptions{Quorum: true})
	if err != nil {
		return 0, err
	}
	return resp.Index, nil
}

func watchChanges(ctx context.Context, kapi clientv2.KeysAPI, scope Scope, start uint64) *changeWatch {
	ctx, cancel := context.WithCancel(ctx)
	cw := &changeWatch{kapi: kapi, scope: scope, start: start, last: start, cancel: cancel,
		done: make(chan struct{}), expired: map[string]bool{}}
	go cw.run(ctx)
	return cw
}

func (cw *changeWatch) run(ctx context.Context) {
	defer close(cw.done)
	w := cw.kapi.Watcher("/", &clientv2.WatcherOptions{AfterIndex: cw.start, Recursive: true})
	for {
		resp, err := w.Next(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ce clientv2.Error
			if errors.As(err, &ce) && ce.Code == clientv2.ErrorCodeEventIndexCleared {
				err = fmt.Errorf("more than 1000 changes in the source since the copy started; the copy cannot be " +
					"shown consistent (stop the source's consumers and run again)")
			}
			cw.mu.Lock()
			cw.lost = err
			cw.mu.Unlock()
			return
		}
		cw.mu.Lock()
		cw.seen++
		if resp.Node != nil {
			cw.last = max(cw.last, resp.Node.ModifiedIndex)
			key := resp.Node.Key
			if resp.Action == "expire" {
				cw.expired[key] = true
			} else if cw.touches(key) {
				cw.changed = append(cw.changed, resp.Action+" "+key)
			}
		}
		cw.mu.Unlock()
	}
}

// touches: the key is in scope, or is a directory holding a prefix.
func (cw *changeWatch) touches(key string) bool {
	if cw.scope.Contains(key) {
		return true
	}
	for _, p := range cw.scope.Prefixes {
		if under(p, key) && !cw.scope.Excluded(p) {
			return true
		}
	}
	return false
}

// expiredKey reports whether the key or a parent directory expired in the source.
func (cw *changeWatch) expiredKey(key string) bool {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	for k := key; ; {
		if cw.expired[k] {
			return true
		}
		i := strings.LastIndex(k, "/")
		if i <= 0 {
			return false
		}
		k = k[:i]
	}
}

// stop ends the watch; it may be called more than once.
func (cw *changeWatch) stop() {
	cw.cancel()
	<-cw.done
}

// finish waits until the watch has seen the source's current index, stops it, and returns an error
// when the source changed: writes in scope, lost track, or index moves no visible event explains
// beyond allowedHidden (hidden nodes raise no events; their expirations are the allowance).
func (cw *changeWatch) finish(ctx context.Context, allowedHidden int) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	end, err := currentIndex(rctx, cw.kapi)
	cancel()
	if err != nil {
		return fmt.Errorf("reading the source index after the copy: %w", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		cw.mu.Lock()
		// Hidden expirations raise no event: caught up once the visible events account for the rest.
		caught := cw.last >= end || cw.lost != nil || cw.seen+allowedHidden >= int(end-cw.start)
		cw.mu.Unlock()
		if caught || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cw.stop()
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.lost != nil {
		return fmt.Errorf("watching the source for changes: %w", cw.lost)
	}
	if len(cw.changed) > 0 {
		sort.Strings(cw.changed)
		return fmt.Errorf("the source changed during the copy (v2 index %d → %d; %d writes in scope: %s); "+
			"stop every client of the source (API servers, controllers) and run the copy again — it resumes",
			cw.start, end, len(cw.changed), strings.Join(first(cw.changed, 5), ", "))
	}
	if unexplained := int(end-cw.start) - cw.seen; unexplained > allowedHidden {
		return fmt.Errorf("the source's v2 index moved from %d to %d with only %d visible events: %d writes to hidden "+
			"keys (or membership changes) happened during the copy; stop every client of the source and run again",
			cw.start, end, cw.seen, unexplained)
	}
	return nil
}
