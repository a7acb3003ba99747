package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	clientv2 "go.etcd.io/etcd/client/v2"
)

func put(t *testing.T, c *etcdtest.Cluster, k, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t).Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *etcdtest.Cluster, k string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Client(t).Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

func spec(c *etcdtest.Cluster, dir string) Spec {
	return Spec{Conn: c.ConnOptions(c.Members[0]), DataDir: c.Members[0].DataDir, Dir: dir, Name: "pre-migration-1",
		Snapshot: true, CopyDataDir: true, Timeout: time.Minute, Now: time.Unix(1700000000, 0)}
}

func TestTakeVerifiesAndKeepsModes(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	put(t, c, "/kubernetes.io/a", "1")
	dir := filepath.Join(t.TempDir(), "backups")
	task := &module.Task{}
	r, err := Take(context.Background(), task, spec(c, dir))
	if err != nil || !task.IsChanged() || !r.Verified {
		t.Fatalf("take: %+v %v", r, err)
	}
	if r.Manifest.SnapshotRevision < 2 || r.Manifest.SnapshotKeys == 0 {
		t.Fatalf("snapshot status: %+v", r.Manifest)
	}
	if _, ok := r.Manifest.Files["member/snap/db"]; !ok {
		t.Fatalf("data dir copy lacks member/snap/db: %v", r.Manifest.Files)
	}
	err = filepath.WalkDir(r.Path, func(p string, d os.DirEntry, err error) error {
		info, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	again := &module.Task{}
	r2, err := Take(context.Background(), again, spec(c, dir))
	if err != nil || again.IsChanged() || r2.Manifest.Created != r.Manifest.Created {
		t.Fatalf("second take should keep the backup: changed=%v %v", again.IsChanged(), err)
	}
}

func TestCorruptBackupIsMovedAsideAndRetaken(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	dir := t.TempDir()
	r, err := Take(context.Background(), &module.Task{}, spec(c, dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Path, snapshotName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(r.Path); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("verify of a corrupt backup: %v", err)
	}
	s := spec(c, dir)
	s.Now = s.Now.Add(time.Hour)
	task := &module.Task{}
	if _, err := Take(context.Background(), task, s); err != nil || !task.IsChanged() {
		t.Fatalf("retake: %v", err)
	}
	aside, _ := filepath.Glob(r.Path + ".incomplete-*")
	if len(aside) != 1 {
		t.Fatalf("the corrupt backup was not kept aside: %v", aside)
	}
}

func TestRestoreBringsBackTheBackedUpData(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	m := c.Members[0]
	put(t, c, "/kubernetes.io/a", "before")
	dir := t.TempDir()
	r, err := Take(context.Background(), &module.Task{}, spec(c, dir))
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, "/kubernetes.io/a", "after")
	put(t, c, "/kubernetes.io/new", "x")

	rs := RestoreSpec{DataDir: m.DataDir, Path: r.Path, Now: time.Unix(1700000100, 0)}
	if _, err := Restore(&module.Task{}, rs); err == nil || !strings.Contains(err.Error(), "stop the etcd service") {
		t.Fatalf("restore under a running member must refuse: %v", err)
	}
	c.Stop(m)
	check := &module.Task{CheckMode: true}
	if _, err := Restore(check, rs); err != nil || !check.IsChanged() {
		t.Fatalf("check mode: %v", err)
	}
	task := &module.Task{}
	res, err := Restore(task, rs)
	if err != nil || !task.IsChanged() {
		t.Fatalf("restore: %v", err)
	}
	if _, err := os.Stat(filepath.Join(res.MovedAway, "wal")); err != nil {
		t.Fatalf("the replaced member dir was not kept: %v", err)
	}
	again := &module.Task{}
	if _, err := Restore(again, rs); err != nil || again.IsChanged() {
		t.Fatalf("second restore should change nothing: changed=%v %v", again.IsChanged(), err)
	}
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	c.WaitReady(t)
	if v := get(t, c, "/kubernetes.io/a"); v != "before" {
		t.Fatalf("after restore /kubernetes.io/a = %q, want the backed-up value", v)
	}
	if v := get(t, c, "/kubernetes.io/new"); v != "" {
		t.Fatalf("a key written after the backup survived the restore: %q", v)
	}
}

func TestMissingDataDirNamesParameter(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	s := spec(c, t.TempDir())
	s.DataDir = t.TempDir()
	task := &module.Task{}
	_, err := Take(context.Background(), task, s)
	if err == nil || !strings.Contains(err.Error(), "parameter data_dir") || task.IsChanged() {
		t.Fatalf("err=%v changed=%v", err, task.IsChanged())
	}
}

// A v2 store with TTL keys makes the leader write a SYNC entry every 500 ms, so the member is stopped
// for the copy (Quiesce) and started again after it.
func TestQuiescedCopyOfAMemberWithV2TTLKeys(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	m := c.Members[0]
	o := c.ConnOptions()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := clientv2.NewKeysAPI(v2).Set(ctx, "/kubernetes.io/events/e1", "x", &clientv2.SetOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s := spec(c, t.TempDir())
	stopped := false
	s.Quiesce = func(context.Context) (func() error, error) {
		c.Stop(m)
		stopped = true
		return func() error { return c.Start(m) }, nil
	}
	r, err := Take(context.Background(), &module.Task{}, s)
	if err != nil || !stopped || !r.Verified {
		t.Fatalf("take: stopped=%v %v", stopped, err)
	}
	if !c.Running(m) {
		t.Fatal("the member was not started again after the copy")
	}
	c.WaitReady(t)
}
