package modules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
)

// Through real Ansible: check mode (changed, nothing written), for real (a verified backup), again
// (kept, not changed); then a restore refused while the member runs, and bad input naming the parameter.
func TestBackupModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t).Put(ctx, "/kubernetes.io/a", "1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := withArgs(c.Args(), map[string]any{"data_dir": c.Members[0].DataDir, "backup_dir": dir, "name": "pre-migration-1"})

	check := ansibletest.Module(t, "etcd_backup", args, ansibletest.Opts{Check: true})
	if check.Failed() || !check.Changed() {
		t.Fatalf("check mode: %v", check)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("check mode wrote %v", entries)
	}

	real := ansibletest.Module(t, "etcd_backup", args, ansibletest.Opts{})
	if real.Failed() || !real.Changed() || real["verified"] != true {
		t.Fatalf("backup: %v", real)
	}
	if _, err := os.Stat(filepath.Join(dir, "pre-migration-1", "member", "snap", "db")); err != nil {
		t.Fatalf("no data dir copy: %v", err)
	}

	again := ansibletest.Module(t, "etcd_backup", args, ansibletest.Opts{})
	if again.Failed() || again.Changed() {
		t.Fatalf("second run: %v", again)
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := c.Client(t).Put(ctx2, "/kubernetes.io/a", "2"); err != nil { // the data dir now differs
		t.Fatal(err)
	}
	restore := ansibletest.Module(t, "etcd_backup", withArgs(args, map[string]any{"state": "restored"}), ansibletest.Opts{})
	if !restore.Failed() || !strings.Contains(restore.Msg(), "stop the etcd service") {
		t.Fatalf("restore under a running member: %v", restore)
	}

	bad := ansibletest.Module(t, "etcd_backup", withArgs(args, map[string]any{"name": "../escape"}), ansibletest.Opts{})
	if !bad.Failed() || !strings.Contains(bad.Msg(), "parameter name") {
		t.Fatalf("bad name: %v", bad)
	}
}
