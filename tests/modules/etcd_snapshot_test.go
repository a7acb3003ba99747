package modules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
)

// Through real Ansible: save (check mode writes nothing, then for real, then again not changed),
// status, restore into a new data dir (check, real, again not changed), and bad input naming the
// option with nothing written.
func TestSnapshotModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put, err := c.Client(t).Put(ctx, "/kubernetes.io/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snapshots")
	path := filepath.Join(dir, "etcd-1.db")
	args := withArgs(c.Args(), map[string]any{"state": "saved", "path": path, "keep": 3})

	check := ansibletest.Module(t, "etcd_snapshot", args, ansibletest.Opts{Check: true})
	if check.Failed() || !check.Changed() {
		t.Fatalf("check mode: %v", check)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check mode created %s: %v", dir, err)
	}
	saved := ansibletest.Module(t, "etcd_snapshot", args, ansibletest.Opts{})
	if saved.Failed() || !saved.Changed() || saved["revision"] != float64(put.Header.Revision) || saved["keys"] != float64(1) {
		t.Fatalf("save: %v, want revision %d and 1 key", saved, put.Header.Revision)
	}
	if again := ansibletest.Module(t, "etcd_snapshot", args, ansibletest.Opts{}); again.Failed() || again.Changed() {
		t.Fatalf("second save: %v", again)
	}
	status := ansibletest.Module(t, "etcd_snapshot", map[string]any{"state": "status", "path": path}, ansibletest.Opts{})
	if status.Failed() || status.Changed() || status["sha256"] != saved["sha256"] || status["keys"] != float64(1) {
		t.Fatalf("status: %v", status)
	}

	dataDir := filepath.Join(t.TempDir(), "etcd")
	restore := map[string]any{"state": "restored", "path": path, "data_dir": dataDir, "name": "etcd1",
		"initial_cluster": "etcd1=https://127.0.0.1:2380", "initial_cluster_token": "restored-1"}
	check = ansibletest.Module(t, "etcd_snapshot", restore, ansibletest.Opts{Check: true})
	if check.Failed() || !check.Changed() {
		t.Fatalf("restore check mode: %v", check)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check mode created %s: %v", dataDir, err)
	}
	restored := ansibletest.Module(t, "etcd_snapshot", restore, ansibletest.Opts{})
	if restored.Failed() || !restored.Changed() || restored["revision"] != float64(put.Header.Revision+1000000000) {
		t.Fatalf("restore: %v", restored)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "wal")); err != nil {
		t.Fatalf("no member dir restored: %v", err)
	}
	if again := ansibletest.Module(t, "etcd_snapshot", restore, ansibletest.Opts{}); again.Failed() || again.Changed() {
		t.Fatalf("second restore: %v", again)
	}
	other := ansibletest.Module(t, "etcd_snapshot", withArgs(restore, map[string]any{"initial_cluster_token": "restored-2"}), ansibletest.Opts{})
	if !other.Failed() || !strings.Contains(other.Msg(), "move_aside") {
		t.Fatalf("a restore over another member without move_aside: %v", other)
	}

	for name, tc := range map[string]struct {
		args  map[string]any
		param string
	}{
		"bump without the mark": {withArgs(restore, map[string]any{"mark_compacted": false}), "mark_compacted"},
		"no token":              {withArgs(restore, map[string]any{"initial_cluster_token": ""}), "initial_cluster_token"},
		"name not in cluster":   {withArgs(restore, map[string]any{"name": "etcd9", "data_dir": t.TempDir() + "/x"}), "name"},
		"negative keep":         {withArgs(args, map[string]any{"keep": -1}), "keep"},
	} {
		r := ansibletest.Module(t, "etcd_snapshot", tc.args, ansibletest.Opts{})
		if !r.Failed() || !strings.Contains(r.Msg(), "parameter "+tc.param) {
			t.Errorf("%s: %v, want a failure naming %s", name, r, tc.param)
		}
	}
	truncated := filepath.Join(dir, "cut.db")
	b, _ := os.ReadFile(path)
	os.WriteFile(truncated, b[:1000], 0o600)
	if r := ansibletest.Module(t, "etcd_snapshot", map[string]any{"state": "status", "path": truncated}, ansibletest.Opts{}); !r.Failed() || !strings.Contains(r.Msg(), truncated) {
		t.Fatalf("status of a truncated file: %v", r)
	}
}
