package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// A member dir of files alone: two WAL segments (the first closed), a v2 snapshot, a db.
func fakeMember(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	for rel, body := range map[string]string{
		"wal/0000000000000000-0000000000000000.wal":   "closed segment",
		"wal/0000000000000001-0000000000000100.wal":   "last segment",
		"snap/0000000000000002-0000000000000050.snap": "old snapshot",
		"snap/0000000000000002-0000000000000090.snap": "new snapshot",
		"snap/db": "bolt",
	} {
		p := filepath.Join(dataDir, memberDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir
}

// The backup takes a staged copy only where its source is unchanged since it was staged; a source
// written since (or gone) is copied (or left out) as without the staging, and every file verifies.
func TestStagedCopiesAreTakenWhereUnchanged(t *testing.T) {
	dataDir := fakeMember(t)
	s := Spec{DataDir: dataDir, Dir: filepath.Join(t.TempDir(), "backups"), Name: "pre-migration-1", CopyDataDir: true,
		Now: time.Unix(1700000000, 0)}
	if err := os.MkdirAll(filepath.Join(s.Dir, "pre-migration-0"+stagedSuffix), 0o700); err != nil {
		t.Fatal(err)
	}
	check := &module.Task{CheckMode: true}
	if _, err := Stage(check, s); err != nil || !check.IsChanged() {
		t.Fatalf("check mode: %v", err)
	}
	if _, err := os.Stat(stagedPath(s)); !os.IsNotExist(err) {
		t.Fatalf("check mode staged: %v", err)
	}
	st, err := Stage(&module.Task{}, s)
	if err != nil || st.Files != 3 { // the two snapshots and the closed segment
		t.Fatalf("stage: %+v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "pre-migration-0"+stagedSuffix)); !os.IsNotExist(err) {
		t.Fatalf("another name's staged copies were kept: %v", err)
	}
	member := filepath.Join(dataDir, memberDir)
	time.Sleep(10 * time.Millisecond) // a later change time
	if err := os.WriteFile(filepath.Join(member, "snap/0000000000000002-0000000000000090.snap"), []byte("rewritten"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(member, "snap/0000000000000002-0000000000000050.snap")); err != nil {
		t.Fatal(err)
	}
	r, err := Take(context.Background(), &module.Task{}, s)
	if err != nil || r.Manifest.StagedFiles != 1 {
		t.Fatalf("take: %+v %v", r.Manifest, err)
	}
	if _, err := Verify(r.Path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Path, memberDir, "snap/0000000000000002-0000000000000090.snap"))
	if err != nil || string(b) != "rewritten" {
		t.Fatalf("the snapshot written since it was staged: %q %v", b, err)
	}
	if len(r.Manifest.Files) != 4 || strings.Join(r.Manifest.V2Snapshots, ",") != "0000000000000002-0000000000000090.snap" {
		t.Fatalf("files %v, v2 snapshots %v", r.Manifest.Files, r.Manifest.V2Snapshots)
	}
	if _, err := os.Stat(stagedPath(s)); !os.IsNotExist(err) {
		t.Fatalf("the staged copies outlived the backup: %v", err)
	}
	again := &module.Task{}
	if st, err := Stage(again, s); err != nil || again.IsChanged() {
		t.Fatalf("staging for a backup that exists: %+v %v", st, err)
	}
}

// A member without a v2 snapshot and with one WAL segment has nothing to stage: an empty staging, and
// the backup copies everything.
func TestStagingNothing(t *testing.T) {
	dataDir := fakeMember(t)
	for _, f := range []string{"wal/0000000000000000-0000000000000000.wal", "snap/0000000000000002-0000000000000050.snap",
		"snap/0000000000000002-0000000000000090.snap"} {
		if err := os.Remove(filepath.Join(dataDir, memberDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	s := Spec{DataDir: dataDir, Dir: filepath.Join(t.TempDir(), "backups"), Name: "pre-migration-1", CopyDataDir: true,
		Now: time.Unix(1700000000, 0)}
	if st, err := Stage(&module.Task{}, s); err != nil || st.Files != 0 {
		t.Fatalf("stage: %+v %v", st, err)
	}
	r, err := Take(context.Background(), &module.Task{}, s)
	if err != nil || r.Manifest.StagedFiles != 0 || len(r.Manifest.Files) != 2 {
		t.Fatalf("take: %+v %v", r.Manifest, err)
	}
}
