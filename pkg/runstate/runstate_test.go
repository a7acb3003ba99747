package runstate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

var (
	t0 = time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	t1 = t0.Add(90 * time.Minute)
)

// params are the module's defaults for state with path.
func params(t *testing.T, path, state string) Params {
	t.Helper()
	var p Params
	if err := module.Decode(map[string]any{"path": path, "state": state}, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

func TestRead(t *testing.T) {
	fresh := "pre-migration-20261203T060000Z"
	cases := []struct {
		name    string
		file    string // "" = absent
		mode    string
		want    ReadResult
		wantErr string
	}{
		{name: "absent", mode: "online",
			want: ReadResult{State: map[string]any{}, Action: "start", Mode: "online", Backup: fresh}},
		{name: "absent without mode",
			want: ReadResult{State: map[string]any{}, Action: "start", Backup: fresh}},
		{name: "resume takes the recorded mode and backup", mode: "online",
			file: `{"status": "offline", "mode": "offline", "backup": "pre-migration-1"}`,
			want: ReadResult{Found: true, Phase: "offline", Action: "resume", Mode: "offline", Backup: "pre-migration-1"}},
		{name: "resume without a recorded mode keeps the requested one", mode: "online",
			file: `{"status": "migrated", "backup": "pre-migration-1"}`,
			want: ReadResult{Found: true, Phase: "migrated", Action: "resume", Mode: "online", Backup: "pre-migration-1"}},
		{name: "done keeps the backup, not the mode", mode: "online",
			file: `{"status": "complete", "mode": "offline", "backup": "pre-migration-1"}`,
			want: ReadResult{Found: true, Phase: "complete", Action: "done", Mode: "online", Backup: "pre-migration-1"}},
		{name: "a phase that is not resumable starts afresh", mode: "offline",
			file: `{"status": "preflight", "mode": "online", "backup": "pre-migration-1"}`,
			want: ReadResult{Found: true, Phase: "preflight", Action: "start", Mode: "offline", Backup: fresh}},
		{name: "no status", file: `{}`,
			want: ReadResult{Found: true, Action: "start", Backup: fresh}},
		{name: "corrupt", file: `{"status": "offl`, wantErr: "move it aside"},
		{name: "empty", file: " ", wantErr: "not a JSON object"},
		{name: "null", file: "null", wantErr: "it holds null"},
		{name: "a list", file: `["offline"]`, wantErr: "not a JSON object"},
		{name: "status not a string", file: `{"status": 3}`, wantErr: "records status 3, not a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "migration-state.json")
			if c.file != "" {
				writeFile(t, path, c.file)
			}
			p := params(t, path, "read")
			p.Mode, p.Resumable, p.BackupPrefix = c.mode, []string{"offline", "online", "migrated"}, "pre-migration"
			res, err := Run(&module.Task{}, p, t0)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err %v, want one naming %s and %q", err, path, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := res.(ReadResult)
			if c.want.State == nil {
				_ = json.Unmarshal([]byte(c.file), &c.want.State)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-backup")
	path := filepath.Join(dir, "migration-state.json")
	p := params(t, path, "recorded")
	p.Status, p.Data = "offline", map[string]any{"mode": "offline", "backup": "pre-migration-1", "members": 3}

	// Check mode: predicts the change, writes nothing (not even the directory).
	task := &module.Task{CheckMode: true, Diff: true}
	res, err := Run(task, p, t0)
	if err != nil || !task.IsChanged() {
		t.Fatalf("check mode: %v changed=%v", err, task.IsChanged())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check mode created %s: %v", dir, err)
	}
	want := map[string]any{"status": "offline", "mode": "offline", "backup": "pre-migration-1", "members": 3.0,
		"started": "2026-12-03T06:00:00Z", "updated": "2026-12-03T06:00:00Z"}
	if r := res.(RecordResult); !reflect.DeepEqual(r.State, want) || len(r.Previous) != 0 {
		t.Fatalf("check mode result %+v", r)
	}

	// For real: the file and its directory are private.
	task = &module.Task{}
	if _, err := Run(task, p, t0); err != nil || !task.IsChanged() {
		t.Fatalf("record: %v changed=%v", err, task.IsChanged())
	}
	if got := readJSON(t, path); !reflect.DeepEqual(got, want) {
		t.Fatalf("file %v, want %v", got, want)
	}
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, path, 0o600)
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// Again later with the same status and data: not changed, not rewritten.
	before, _ := os.Stat(path)
	task = &module.Task{}
	res, err = Run(task, p, t1)
	if err != nil || task.IsChanged() {
		t.Fatalf("again: %v changed=%v", err, task.IsChanged())
	}
	if r := res.(RecordResult); !reflect.DeepEqual(r.State, want) || !reflect.DeepEqual(r.Previous, want) {
		t.Fatalf("again result %+v", r)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Fatal("an unchanged record rewrote the file")
	}

	// The next phase: started kept, updated moves, other keys kept, a data key replaced whole.
	p.Status, p.Data = "migrated", map[string]any{"members": map[string]any{"a": 1}}
	task = &module.Task{Diff: true}
	res, err = Run(task, p, t1)
	if err != nil || !task.IsChanged() {
		t.Fatalf("next phase: %v changed=%v", err, task.IsChanged())
	}
	next := map[string]any{"status": "migrated", "mode": "offline", "backup": "pre-migration-1",
		"members": map[string]any{"a": 1.0}, "started": "2026-12-03T06:00:00Z", "updated": "2026-12-03T07:30:00Z"}
	if r := res.(RecordResult); !reflect.DeepEqual(r.State, next) || !reflect.DeepEqual(r.Previous, want) {
		t.Fatalf("next phase result %+v", r)
	}
	if got := readJSON(t, path); !reflect.DeepEqual(got, next) {
		t.Fatalf("file %v, want %v", got, next)
	}

	// Only a data value differs: changed.
	p.Data = map[string]any{"backup": "pre-migration-2"}
	task = &module.Task{}
	if _, err := Run(task, p, t1); err != nil || !task.IsChanged() || readJSON(t, path)["backup"] != "pre-migration-2" {
		t.Fatalf("data change: %v changed=%v", err, task.IsChanged())
	}
}

func TestRecordKeepsAnExistingDirAndRefusesCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.json")
	writeFile(t, path, `{"status": "offline"`)
	p := params(t, path, "recorded")
	p.Status = "online"
	if _, err := Run(&module.Task{}, p, t0); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("corrupt state: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"status": "offline"` {
		t.Fatalf("corrupt state overwritten: %s", b)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(&module.Task{}, p, t0); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o755|os.ModeDir)
	assertMode(t, path, 0o600)
}

func TestArchive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "migration-state.json")
	p := params(t, path, "archived")
	p.ArchiveSuffix = "rolled-back"

	task := &module.Task{}
	if res, err := Run(task, p, t0); err != nil || task.IsChanged() || res.(ArchiveResult).ArchivedTo != "" {
		t.Fatalf("no file: %v %v changed=%v", res, err, task.IsChanged())
	}

	base := filepath.Join(dir, "migration-state.rolled-back-20261203T060000Z")
	for i, want := range []string{base + ".json", base + "-1.json", base + "-2.json"} {
		content := `{"status": "complete", "n": ` + string(rune('0'+i)) + `}`
		writeFile(t, path, content)
		task = &module.Task{CheckMode: true}
		res, err := Run(task, p, t0)
		if err != nil || !task.IsChanged() || res.(ArchiveResult).ArchivedTo != want {
			t.Fatalf("check mode %d: %v %v", i, res, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("check mode moved the file: %v", err)
		}
		task = &module.Task{}
		res, err = Run(task, p, t0)
		if err != nil || !task.IsChanged() || res.(ArchiveResult).ArchivedTo != want {
			t.Fatalf("archive %d: %v %v", i, res, err)
		}
		if b, _ := os.ReadFile(want); string(b) != content {
			t.Fatalf("%s holds %q, want %q", want, b, content)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the state file is still there: %v", err)
		}
	}

	// A corrupt file is archived too: that is how it is moved aside.
	writeFile(t, path, "{")
	p.ArchiveSuffix = "archived"
	if res, err := Run(&module.Task{}, p, t1); err != nil ||
		res.(ArchiveResult).ArchivedTo != filepath.Join(dir, "migration-state.archived-20261203T073000Z.json") {
		t.Fatalf("corrupt: %v %v", res, err)
	}

	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	var pe *module.ParamError
	if _, err := Run(&module.Task{}, p, t1); !errors.As(err, &pe) || pe.Param != "path" {
		t.Fatalf("a directory: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		args  map[string]any
		param string
	}{
		{map[string]any{"path": "state.json"}, "path"},
		{map[string]any{"path": "~/state.json", "state": "recorded", "status": "x"}, "path"},
		{map[string]any{"path": "/var/lib/etcd-backup/"}, "path"},
		{map[string]any{"path": "/s.json", "done": ""}, "done"},
		{map[string]any{"path": "/s.json", "backup_prefix": "a/b"}, "backup_prefix"},
		{map[string]any{"path": "/s.json", "state": "recorded"}, "status"},
		{map[string]any{"path": "/s.json", "state": "recorded", "status": "x", "data": map[string]any{"started": "x"}}, "data"},
		{map[string]any{"path": "/s.json", "state": "archived", "archive_suffix": ""}, "archive_suffix"},
	}
	for _, c := range cases {
		var p Params
		err := module.Decode(c.args, &p)
		if err == nil {
			err = p.Validate()
		}
		var pe *module.ParamError
		if !errors.As(err, &pe) || pe.Param != c.param {
			t.Errorf("%v: got %v, want a ParamError on %s", c.args, err, c.param)
		}
	}
	// Options of another state are ignored.
	p := Params{Path: "/s.json", State: "archived", ArchiveSuffix: "x", Done: "", Status: ""}
	if err := p.Validate(); err != nil {
		t.Errorf("another state's options: %v", err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
	}
}
