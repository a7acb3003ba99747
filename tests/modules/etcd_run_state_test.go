package modules

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// Through real Ansible, the migration's use: read (start), record in check mode (nothing written),
// for real, again (not changed); read resumes with the recorded mode and backup; record complete,
// read says done; archive; bad input names the option and writes nothing.
func TestRunStateModule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-backup")
	path := filepath.Join(dir, "migration-state.json")
	read := map[string]any{"path": path, "mode": "online", "resumable": []string{"offline", "online", "migrated"},
		"backup_prefix": "pre-migration"}

	start := readRunState(t, read)
	if start.Failed() || start.Changed() || start["found"] != false || start["action"] != "start" ||
		start["mode"] != "online" || !strings.HasPrefix(start["backup"].(string), "pre-migration-20") {
		t.Fatalf("read without a file: %v", start)
	}

	record := map[string]any{"path": path, "state": "recorded", "status": "offline",
		"data": map[string]any{"mode": "offline", "backup": "pre-migration-1"}}
	check := ansibletest.Module(t, "etcd_run_state", record, ansibletest.Opts{Check: true, Diff: true})
	if _, err := os.Stat(dir); check.Failed() || !check.Changed() || check["diff"] == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("check mode (dir: %v): %v", err, check)
	}

	real := ansibletest.Module(t, "etcd_run_state", record, ansibletest.Opts{})
	if st, _ := real["state"].(map[string]any); real.Failed() || !real.Changed() || st["status"] != "offline" || st["started"] == nil {
		t.Fatalf("record: %v", real)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v %v, want mode %v", p, fi.Mode(), err, want)
		}
	}

	again := ansibletest.Module(t, "etcd_run_state", record, ansibletest.Opts{})
	if again.Failed() || again.Changed() {
		t.Fatalf("second record: %v", again)
	}

	resume := readRunState(t, read)
	if resume.Failed() || resume["action"] != "resume" || resume["phase"] != "offline" || resume["mode"] != "offline" ||
		resume["backup"] != "pre-migration-1" {
		t.Fatalf("read after record: %v", resume)
	}

	complete := ansibletest.Module(t, "etcd_run_state", map[string]any{"path": path, "state": "recorded", "status": "complete"}, ansibletest.Opts{})
	done := readRunState(t, read)
	if complete.Failed() || !complete.Changed() || done["action"] != "done" || done["mode"] != "online" || done["backup"] != "pre-migration-1" {
		t.Fatalf("record complete: %v\nread: %v", complete, done)
	}

	archived := ansibletest.Module(t, "etcd_run_state", map[string]any{"path": path, "state": "archived", "archive_suffix": "rolled-back"}, ansibletest.Opts{})
	to, _ := archived["archived_to"].(string)
	if _, err := os.Stat(path); archived.Failed() || !archived.Changed() || !errors.Is(err, fs.ErrNotExist) ||
		!strings.HasPrefix(to, filepath.Join(dir, "migration-state.rolled-back-20")) || !strings.HasSuffix(to, ".json") {
		t.Fatalf("archive: %v", archived)
	}
	if b, err := os.ReadFile(to); err != nil || !strings.Contains(string(b), `"complete"`) {
		t.Fatalf("archive %s: %v %s", to, err, b)
	}

	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"path": path, "state": "recorded"}, "parameter status"},
		{map[string]any{"path": "migration-state.json", "state": "recorded", "status": "offline"}, "parameter path"},
		{map[string]any{"path": path, "state": "recorded", "status": "offline", "data": "mode=offline"}, "parameter data"},
	} {
		bad := ansibletest.Module(t, "etcd_run_state", c.args, ansibletest.Opts{})
		if _, err := os.Stat(path); !bad.Failed() || !strings.Contains(bad.Msg(), c.want) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: %v (file: %v), want a failure naming %s and no file", c.args, bad, err, c.want)
		}
	}
}

// readRunState runs a read as a role does, registered, and returns the registered result: the json
// callback, which ansibletest.Module reads, replaces a result's action key with the task's action.
func readRunState(t *testing.T, args map[string]any) ansibletest.Result {
	t.Helper()
	b, _ := json.Marshal(args)
	play := `- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - etcdops.etcd.etcd_run_state: ` + string(b) + `
      register: run
    - ansible.builtin.debug:
        var: run
`
	path := filepath.Join(t.TempDir(), "play.yml")
	if err := os.WriteFile(path, []byte(play), 0o644); err != nil {
		t.Fatal(err)
	}
	tasks := ansibletest.Playbook(t, path, "localhost,", nil, nil)
	if len(tasks) != 2 {
		t.Fatalf("read failed: %v", tasks)
	}
	run, _ := tasks[1].Hosts["localhost"]["run"].(map[string]any)
	return run
}
