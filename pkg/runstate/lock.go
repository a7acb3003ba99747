package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// keyOwner is the lock file's owner id (beside started and the owner's data).
const keyOwner = "owner"

// LockResult is what state=locked and state=unlocked return.
type LockResult struct {
	// Acquired: this run holds the lock (locked), or no longer holds it (unlocked: released or never held).
	Acquired bool `json:"acquired"`
	// Lock is the lock file's contents after the task ({} when there is none).
	Lock map[string]any `json:"lock"`
	// Previous is the lock this task replaced or released ({} when none).
	Previous map[string]any `json:"previous"`
	// Holder describes the run that holds the lock when it is not this one ("" otherwise): who, where,
	// since when, and when the lock turns stale.
	Holder string `json:"holder"`
	// HolderOwner is that run's owner id ("" when this run holds the lock).
	HolderOwner string `json:"holder_owner"`
	// Why says how the lock was taken: "free", "ours", "takeover", "stale" or "broken".
	Why string `json:"why,omitempty"`
}

// Lock takes the run lock at p.Path for p.Owner: when there is none, when it is already this owner's,
// when its owner is p.Takeover (the caller found that run gone), when it is older than p.StaleAfter,
// or with p.Break. Otherwise it changes nothing and reports the holder (acquired=false); the caller
// decides how to refuse. Read, decision and write happen under flock(2) on a sidecar file, so two runs
// racing for a free lock cannot both take it.
func Lock(t *module.Task, p Params, now time.Time) (LockResult, error) {
	r := LockResult{Lock: map[string]any{}, Previous: map[string]any{}}
	unlock, err := flockSidecar(p.Path, t.CheckMode)
	if err != nil {
		return r, err
	}
	defer unlock()
	cur, found, err := load(p.Path)
	if err != nil {
		return r, err
	}
	holder, _ := cur[keyOwner].(string)
	switch {
	case !found:
		r.Why = "free"
	case holder == p.Owner:
		r.Acquired, r.Lock, r.Why = true, cur, "ours"
		return r, nil
	case p.Takeover != "" && holder == p.Takeover:
		r.Why = "takeover"
	case p.StaleAfter > 0 && age(cur, now) > p.StaleAfter:
		r.Why = "stale"
		t.Warn("took over the stale run lock %s: %s", p.Path, describe(cur, now, p.StaleAfter))
	case p.Break:
		r.Why = "broken"
		t.Warn("broke the run lock %s (break): %s", p.Path, describe(cur, now, p.StaleAfter))
	default:
		r.Lock, r.Holder, r.HolderOwner = cur, describe(cur, now, p.StaleAfter), holder
		return r, nil
	}
	next := map[string]any{}
	if err := roundTrip(p.Data, &next); err != nil {
		return r, &module.ParamError{Param: "data", Msg: "is not JSON: " + err.Error()}
	}
	next[keyOwner], next[keyStarted] = p.Owner, now.Format(time.RFC3339)
	if found {
		r.Previous = cur
	}
	r.Acquired, r.Lock = true, next
	t.Changed()
	if t.CheckMode {
		return r, nil
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return r, err
	}
	return r, writeAtomic(p.Path, append(b, '\n'))
}

// Unlock removes the lock when p.Owner holds it; a lock held by another run (one that broke or took
// over this run's lock) is left alone, with a warning.
func Unlock(t *module.Task, p Params, now time.Time) (LockResult, error) {
	r := LockResult{Acquired: true, Lock: map[string]any{}, Previous: map[string]any{}}
	unlock, err := flockSidecar(p.Path, t.CheckMode)
	if err != nil {
		return r, err
	}
	defer unlock()
	cur, found, err := load(p.Path)
	if err != nil || !found {
		return r, err
	}
	if holder, _ := cur[keyOwner].(string); holder != p.Owner {
		r.Lock, r.Holder, r.HolderOwner = cur, describe(cur, now, p.StaleAfter), holder
		t.Warn("the run lock %s is not this run's (another run took it over), so it stays: %s", p.Path, r.Holder)
		return r, nil
	}
	r.Previous = cur
	t.Changed()
	if t.CheckMode {
		return r, nil
	}
	if err := os.Remove(p.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("cannot remove the run lock: %w", err)
	}
	return r, nil
}

// age is how long ago the lock was taken (0 when its start time does not parse: such a lock only goes
// with break).
func age(lock map[string]any, now time.Time) time.Duration {
	s, _ := lock[keyStarted].(string)
	started, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0
	}
	return now.Sub(started)
}

// describe names the lock's holder for a person: its data (user, controller, pid, playbook), start and
// age, and when it turns stale.
func describe(lock map[string]any, now time.Time, staleAfter time.Duration) string {
	s := fmt.Sprintf("owner %v", lock[keyOwner])
	for _, k := range []string{"user", "controller", "pid", "playbook"} {
		if v, ok := lock[k]; ok {
			s += fmt.Sprintf(", %s %v", k, v)
		}
	}
	s += fmt.Sprintf(", started %v (%s ago)", lock[keyStarted], age(lock, now).Round(time.Second))
	if staleAfter > 0 {
		s += fmt.Sprintf(", stale after %s", staleAfter)
	}
	return s
}

// flockSidecar holds an exclusive flock on PATH.flock until the returned function runs. In check mode
// nothing is created: a missing directory means there is no lock to read.
func flockSidecar(path string, check bool) (func(), error) {
	if check {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the run lock's directory: %w", err)
	}
	f, err := os.OpenFile(path+".flock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the run lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil // closing releases the flock
}
