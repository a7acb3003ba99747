package runstate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

func lockParams(t *testing.T, path, state, owner string, extra map[string]any) Params {
	t.Helper()
	args := map[string]any{"path": path, "state": state, "owner": owner, "stale_after": "6h"}
	for k, v := range extra {
		args[k] = v
	}
	var p Params
	if err := module.Decode(args, &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 19, concurrency: the lock is taken when free or already ours; another live run is refused
// (acquired=false, the holder named, the file unchanged); a run that the caller found gone
// (takeover), a lock older than stale_after, or break take it over; release removes only our own lock.
func TestLockDecisions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "etcdops-run.lock")
	owner := map[string]any{"user": "root", "controller": "ctl1", "pid": 100, "playbook": "migrate_v2_to_v3.yml"}
	take := func(owner string, extra map[string]any, at time.Time, check bool) (LockResult, *module.Task) {
		t.Helper()
		task := &module.Task{CheckMode: check}
		r, err := Lock(task, lockParams(t, path, "locked", owner, extra), at)
		if err != nil {
			t.Fatal(err)
		}
		return r, task
	}
	if r, task := take("A", map[string]any{"data": owner}, t0, true); !r.Acquired || !task.IsChanged() {
		t.Fatalf("check mode on a free lock: %+v", r)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("check mode created the lock's directory: %v", err)
	}
	if r, task := take("A", map[string]any{"data": owner}, t0, false); !r.Acquired || !task.IsChanged() || r.Why != "free" {
		t.Fatalf("free lock: %+v", r)
	}
	held := readJSON(t, path)
	if held["owner"] != "A" || held["started"] != t0.Format(time.RFC3339) || held["playbook"] != "migrate_v2_to_v3.yml" {
		t.Fatalf("lock file: %v", held)
	}
	if r, task := take("A", nil, t1, false); !r.Acquired || task.IsChanged() || r.Why != "ours" {
		t.Fatalf("our own lock again: %+v", r)
	}
	r, task := take("B", nil, t1, false)
	if r.Acquired || task.IsChanged() || r.HolderOwner != "A" ||
		!strings.Contains(r.Holder, "user root, controller ctl1, pid 100, playbook migrate_v2_to_v3.yml, started 2026-12-03T06:00:00Z (1h30m0s ago), stale after 6h0m0s") {
		t.Fatalf("a lock held by another run: %+v", r)
	}
	if got := readJSON(t, path); got["owner"] != "A" {
		t.Fatalf("a refused run changed the lock: %v", got)
	}
	if r, _ := take("B", map[string]any{"takeover": "someone-else"}, t1, false); r.Acquired {
		t.Fatalf("takeover of another owner's lock: %+v", r)
	}
	if r, task := take("B", map[string]any{"takeover": "A"}, t1, false); !r.Acquired || !task.IsChanged() || r.Why != "takeover" || r.Previous["owner"] != "A" {
		t.Fatalf("takeover of a gone run's lock: %+v", r)
	}
	if r, task := take("C", nil, t1.Add(7*time.Hour), false); !r.Acquired || r.Why != "stale" || len(task.Warnings()) != 1 {
		t.Fatalf("stale lock: %+v", r)
	}
	if r, task := take("D", map[string]any{"break": true}, t1.Add(7*time.Hour), false); !r.Acquired || r.Why != "broken" || len(task.Warnings()) != 1 {
		t.Fatalf("break: %+v", r)
	}

	// Release: not ours is left alone (warned), ours is removed, none is fine.
	task = &module.Task{}
	if r, err := Unlock(task, lockParams(t, path, "unlocked", "A", nil), t1); err != nil || task.IsChanged() || r.HolderOwner != "D" || len(task.Warnings()) != 1 {
		t.Fatalf("release of a lock taken over: %+v %v", r, err)
	}
	task = &module.Task{}
	if r, err := Unlock(task, lockParams(t, path, "unlocked", "D", nil), t1); err != nil || !task.IsChanged() || r.Previous["owner"] != "D" {
		t.Fatalf("release: %+v %v", r, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lock left after release: %v", err)
	}
	task = &module.Task{}
	if _, err := Unlock(task, lockParams(t, path, "unlocked", "D", nil), t1); err != nil || task.IsChanged() {
		t.Fatalf("release without a lock: %v", err)
	}
}

// Many runs racing for a free lock: exactly one takes it.
func TestLockRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etcdops-run.lock")
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := Lock(&module.Task{}, lockParams(t, path, "locked", "run-"+string(rune('a'+i)), nil), t0)
			if err != nil {
				t.Error(err)
			}
			if r.Acquired {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d runs took the lock", winners)
	}
}

func TestLockValidate(t *testing.T) {
	var p Params
	if err := module.Decode(map[string]any{"path": "/x/lock", "state": "locked"}, &p); err != nil {
		t.Fatal(err)
	}
	var pe *module.ParamError
	if err := p.Validate(); !errors.As(err, &pe) || pe.Param != "owner" {
		t.Fatalf("no owner: %v", err)
	}
}
