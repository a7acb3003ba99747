package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// ReadResult is the decision a re-run makes from the file.
type ReadResult struct {
	Found bool           `json:"found"`
	State map[string]any `json:"state"` // the file's contents, {} when absent
	Phase string         `json:"phase"` // its status, "" when absent
	// Action is "done" (phase == done), "resume" (phase in resumable) or "start".
	Action string `json:"action"`
	// Mode is the recorded mode when resuming (else, or when none is recorded, the requested one).
	Mode string `json:"mode"`
	// Backup is the recorded backup when resuming or done (empty if none is recorded), else a fresh name.
	Backup string `json:"backup"`
}

// Read loads the file and decides: start, resume or done.
func Read(p Params, now time.Time) (ReadResult, error) {
	st, found, err := load(p.Path)
	if err != nil {
		return ReadResult{}, err
	}
	r := ReadResult{Found: found, State: st, Action: "start", Mode: p.Mode,
		Backup: p.BackupPrefix + "-" + now.Format(stamp)}
	var mode, backup string
	for key, dst := range map[string]*string{keyStatus: &r.Phase, "mode": &mode, "backup": &backup} {
		if v, ok := st[key]; ok {
			s, isString := v.(string)
			if !isString {
				return ReadResult{}, fmt.Errorf("the state file %s records %s %v, not a string; fix it, or move it "+
					"aside (state=archived) to start afresh", p.Path, key, v)
			}
			*dst = s
		}
	}
	switch {
	case found && r.Phase == p.Done:
		r.Action, r.Backup = "done", backup
	case found && slices.Contains(p.Resumable, r.Phase):
		r.Action, r.Backup = "resume", backup
		if mode != "" {
			r.Mode = mode
		}
	}
	return r, nil
}

// RecordResult is the state after recording and the one before.
type RecordResult struct {
	State    map[string]any `json:"state"`
	Previous map[string]any `json:"previous"` // {} when there was no file
}

// Record sets the status and merges data into the file (top-level keys replace); it rewrites the
// file only when the status or a data key differs.
func Record(t *module.Task, p Params, now time.Time) (RecordResult, error) {
	prev, found, err := load(p.Path)
	if err != nil {
		return RecordResult{}, err
	}
	data := map[string]any{}
	if err := roundTrip(p.Data, &data); err != nil {
		return RecordResult{}, &module.ParamError{Param: "data", Msg: "is not JSON: " + err.Error()}
	}
	r := RecordResult{State: prev, Previous: prev}
	differs := !found || prev[keyStatus] != p.Status
	for k, v := range data {
		if old, ok := prev[k]; !ok || !reflect.DeepEqual(old, v) {
			differs = true
		}
	}
	if !differs {
		return r, nil
	}
	next := make(map[string]any, len(prev)+len(data)+3)
	for k, v := range prev {
		next[k] = v
	}
	for k, v := range data {
		next[k] = v
	}
	ts := now.Format(time.RFC3339)
	next[keyStatus], next[keyUpdated] = p.Status, ts
	if _, ok := next[keyStarted]; !ok {
		next[keyStarted] = ts
	}
	r.State = next
	t.Changed()
	after, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return r, err
	}
	after = append(after, '\n')
	before := ""
	if found {
		b, _ := json.MarshalIndent(prev, "", "  ")
		before = string(b) + "\n"
	}
	t.SetDiff(before, string(after))
	if t.CheckMode {
		return r, nil
	}
	return r, writeAtomic(p.Path, after)
}

// load reads the state file: {} and found=false when it is absent; an error naming the path and
// the fix when it exists but is not a JSON object (corrupt state is never taken for no state).
func load(path string) (map[string]any, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the state file: %w", err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil || st == nil {
		why := "it holds null"
		if err != nil {
			why = err.Error()
		}
		return nil, true, fmt.Errorf("the state file %s is not a JSON object (%s), so it cannot say how far the "+
			"last run got; inspect it, then fix it or move it aside (state=archived, or mv %s %s.corrupt) "+
			"for the next run to start afresh", path, why, path, path)
	}
	return st, true, nil
}

// writeAtomic replaces path with data, mode 0600: a temporary file in the same directory (created
// 0700 when missing), synced, renamed over path, and the directory synced.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the state file's directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write the state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // nothing left to remove after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write the state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write the state file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// roundTrip gives v the shape JSON gives it (numbers as float64), so values compare with the file's.
func roundTrip(v any, dst *map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, dst)
}
