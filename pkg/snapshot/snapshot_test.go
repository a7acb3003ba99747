package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// seed writes n keys, overwrites one and deletes one: n-1 live keys.
func seed(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("/kubernetes.io/k%03d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx(t), "/kubernetes.io/k000", "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx(t), "/kubernetes.io/k001"); err != nil {
		t.Fatal(err)
	}
}

func save(t *testing.T, c *etcdtest.Cluster, path string) SaveResult {
	t.Helper()
	task := &module.Task{}
	r, err := Save(context.Background(), task, SaveSpec{Conn: c.ConnOptions(c.Members[0]), Path: path, Timeout: time.Minute})
	if err != nil || !task.IsChanged() {
		t.Fatalf("save %s: changed=%v %v", path, task.IsChanged(), err)
	}
	return r
}

func TestSaveVerifiesReportsAndKeeps(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	seed(t, cli, 20)
	head, err := cli.Get(ctx(t), "/kubernetes.io/k000")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snapshots")
	path := filepath.Join(dir, "etcd-1.db")
	spec := SaveSpec{Conn: c.ConnOptions(c.Members[0]), Path: path, Timeout: time.Minute}

	check := &module.Task{CheckMode: true}
	if _, err := Save(context.Background(), check, spec); err != nil || !check.IsChanged() {
		t.Fatalf("check mode: changed=%v %v", check.IsChanged(), err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check mode created %s: %v", dir, err)
	}

	r := save(t, c, path)
	if r.Keys != 19 || r.Revision != head.Header.Revision || r.Size == 0 || len(r.SHA256) != 64 {
		t.Fatalf("facts: %+v, want 19 keys at revision %d", r.Info, head.Header.Revision)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %v", p, st.Mode().Perm(), err, want)
		}
	}
	if leftovers, _ := filepath.Glob(path + tmpSuffix + "*"); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
	st, err := Status(path, false)
	if err != nil || st != r.Info {
		t.Fatalf("status %+v %v, want %+v", st, err, r.Info)
	}

	again := &module.Task{}
	if r2, err := Save(context.Background(), again, spec); err != nil || again.IsChanged() || r2.Info != r.Info {
		t.Fatalf("second save must keep the snapshot: changed=%v %v", again.IsChanged(), err)
	}

	// Retention: three more of the same prefix, keep 2 → the two oldest go; other names stay.
	other := filepath.Join(dir, "other-1.db")
	save(t, c, other)
	for i := 2; i <= 4; i++ {
		old := time.Now().Add(time.Duration(i-10) * time.Minute)
		if i < 4 {
			save(t, c, filepath.Join(dir, fmt.Sprintf("etcd-%d.db", i)))
			os.Chtimes(filepath.Join(dir, fmt.Sprintf("etcd-%d.db", i)), old, old)
		}
	}
	os.Chtimes(path, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	keep := spec
	keep.Path, keep.Keep, keep.KeepPrefix = filepath.Join(dir, "etcd-4.db"), 2, DefaultKeepPrefix(filepath.Join(dir, "etcd-4.db"))
	task := &module.Task{}
	kr, err := Save(context.Background(), task, keep)
	if err != nil || !task.IsChanged() {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "etcd-2.db"), path}
	if strings.Join(kr.Removed, ",") != strings.Join(want, ",") {
		t.Fatalf("removed %v, want %v", kr.Removed, want)
	}
	for _, p := range []string{keep.Path, filepath.Join(dir, "etcd-3.db"), other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s should stay: %v", p, err)
		}
	}
}

func TestStatusFailsOnDamagedFilesNamingThem(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	seed(t, c.Client(t), 5)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	save(t, c, good)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated, flipped := filepath.Join(dir, "truncated.db"), filepath.Join(dir, "flipped.db")
	os.WriteFile(truncated, b[:len(b)/2], 0o600)
	b[4096+100] ^= 0xff
	os.WriteFile(flipped, b, 0o600)
	for p, want := range map[string]string{truncated: "cut short", flipped: "SHA-256 mismatch", filepath.Join(dir, "absent.db"): "no such file"} {
		if _, err := Status(p, false); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
			t.Errorf("status of %s: %v, want an error naming it and %q", p, err, want)
		}
	}
	// A save over a damaged file refuses and leaves it.
	_, err = Save(context.Background(), &module.Task{}, SaveSpec{Conn: c.ConnOptions(c.Members[0]), Path: flipped, Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "left as it is") {
		t.Fatalf("save over a damaged file: %v", err)
	}
}

// TestRestoreThreeMembers restores every member of a three-member cluster from one snapshot with a
// new token and starts them together: the keys are back, the revision is bumped, and the cluster is
// the one the restore reported. Run with ETCDTEST_BIN for etcd 3.4 and 3.6 (make test-snapshot-versions).
func TestRestoreThreeMembers(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	cli := c.Client(t)
	seed(t, cli, 30)
	path := filepath.Join(t.TempDir(), "etcd-1.db")
	snap := save(t, c, path)

	spec := func(m *etcdtest.Member) RestoreSpec {
		return RestoreSpec{Path: path, DataDir: m.DataDir, Name: m.Name, InitialCluster: m.InitialCluster,
			Token: "restored-1", BumpRevision: 1000, MarkCompacted: true, MoveAside: true, Now: time.Unix(1700000000, 0)}
	}
	if _, err := Restore(&module.Task{}, spec(c.Members[0])); err == nil || !strings.Contains(err.Error(), "stop the etcd service") {
		t.Fatalf("restore under a running member: %v", err)
	}
	c.Close()
	noMove := spec(c.Members[0])
	noMove.MoveAside = false
	var pe *module.ParamError
	if _, err := Restore(&module.Task{}, noMove); !errors.As(err, &pe) || pe.Param != "move_aside" {
		t.Fatalf("restore over a member without move_aside: %v", err)
	}
	badURL := spec(c.Members[0])
	badURL.PeerURLs = []string{"https://127.0.0.1:1"}
	if _, err := Restore(&module.Task{}, badURL); !errors.As(err, &pe) || pe.Param != "peer_urls" {
		t.Fatalf("peer_urls unlike initial_cluster: %v", err)
	}
	check := &module.Task{CheckMode: true}
	if r, err := Restore(check, spec(c.Members[0])); err != nil || !check.IsChanged() || r.MovedAside == "" {
		t.Fatalf("check mode: %+v %v", r, err)
	}
	if _, err := os.Stat(spec(c.Members[0]).DataDir + "/member.pre-restore-20231114T221320Z"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("check mode moved the member dir: %v", err)
	}

	var clusterID string
	for _, m := range c.Members {
		task := &module.Task{}
		r, err := Restore(task, spec(m))
		if err != nil || !task.IsChanged() || r.MovedAside == "" || r.Revision != snap.Revision+1000 {
			t.Fatalf("restore %s: %+v %v", m.Name, r, err)
		}
		if _, err := os.Stat(filepath.Join(r.MovedAside, "wal")); err != nil {
			t.Fatalf("the old member dir is not kept aside: %v", err)
		}
		clusterID = r.ClusterID
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Members))
	for i, m := range c.Members {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Start(m) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.WaitReady(t)

	cli = c.Client(t)
	resp, err := cli.Get(ctx(t), "/kubernetes.io/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != snap.Keys || string(resp.Kvs[0].Value) != "again" {
		t.Fatalf("%d keys after the restore (first %s), want %d", len(resp.Kvs), resp.Kvs[0].Value, snap.Keys)
	}
	if resp.Header.Revision < snap.Revision+1000 || fmt.Sprintf("%x", resp.Header.ClusterId) != clusterID {
		t.Fatalf("revision %d cluster %x, want ≥ %d and %s", resp.Header.Revision, resp.Header.ClusterId, snap.Revision+1000, clusterID)
	}
	// The compaction mark: the snapshot's revision is no longer readable.
	if _, err := cli.Get(ctx(t), "/kubernetes.io/k000", clientv3.WithRev(snap.Revision)); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("a read at the snapshot's revision: %v, want compacted", err)
	}
	members, err := cli.MemberList(ctx(t))
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("members %v %v", members, err)
	}
	if _, err := cli.Put(ctx(t), "/kubernetes.io/after", "x"); err != nil {
		t.Fatal(err)
	}

	// Again, with the members running on the restored dirs: the same identity, nothing to do.
	again := &module.Task{}
	if r, err := Restore(again, spec(c.Members[1])); err != nil || again.IsChanged() {
		t.Fatalf("re-run: %+v changed=%v %v", r, again.IsChanged(), err)
	}
}

// A stopped member's member/snap/db (seed 002's source c) carries no SHA-256 trailer: refused by
// default naming skip_hash_check, read and restored with it (etcdutl's --skip-hash-check), every live key kept.
func TestMemberDBWithSkipHash(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	seed(t, c.Client(t), 7)
	m := c.Members[0]
	c.Stop(m)
	db := filepath.Join(m.DataDir, "member", "snap", "db")
	if _, err := Status(db, false); err == nil || !strings.Contains(err.Error(), "skip_hash_check") {
		t.Fatalf("status of a member's db without skip: %v, want a refusal naming skip_hash_check", err)
	}
	st, err := Status(db, true)
	if err != nil || st.Keys != 6 || st.Revision == 0 || len(st.SHA256) != 64 {
		t.Fatalf("status of a member's db with skip: %+v %v, want 6 live keys", st, err)
	}
	spec := RestoreSpec{Path: db, DataDir: filepath.Join(t.TempDir(), "restored"), Name: "m0",
		InitialCluster: "m0=https://127.0.0.1:2380", Token: "t", BumpRevision: 1000, MarkCompacted: true, Now: time.Now()}
	if _, err := Restore(&module.Task{}, spec); err == nil {
		t.Fatal("restore of a member's db without skip: want a refusal")
	}
	spec.SkipHash = true
	r, err := Restore(&module.Task{}, spec)
	if err != nil || r.Revision != st.Revision+1000 || r.Snapshot.Keys != 6 {
		t.Fatalf("restore with skip: %+v %v", r, err)
	}
}

// A killed save leaves its download (PATH.etcd-snapshot-partial.part) or its unverified file
// (PATH.etcd-snapshot-partial), never a file at PATH. The next save in the directory (to another path,
// as restore_from_snapshot.yml's re-run names a new one, or to the same) removes them, keeps the
// temporary file a save under way holds, and saves a complete snapshot; check mode only reports them.
func TestSaveRemovesWhatAKilledSaveLeft(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	seed(t, c.Client(t), 20)
	dir := t.TempDir()
	good := save(t, c, filepath.Join(dir, "good.db"))
	b, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "restore-2.db")
	stale := []string{
		filepath.Join(dir, "restore-1.db"+tmpSuffix+".part"), // killed mid-download
		filepath.Join(dir, "restore-0.db"+tmpSuffix),         // killed while it verified
		path + tmpSuffix + ".part",                           // the same path's killed download
	}
	for i, p := range stale {
		if err := os.WriteFile(p, b[:len(b)/(i+2)], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	live, err := lockTemp(filepath.Join(dir, "live.db"+tmpSuffix+".part")) // a save under way
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	spec := SaveSpec{Conn: c.ConnOptions(c.Members[0]), Path: path, Timeout: time.Minute}

	check := &module.Task{CheckMode: true}
	if r, err := Save(context.Background(), check, spec); err != nil || !check.IsChanged() || len(r.Actions) != 4 {
		t.Fatalf("check mode: changed=%v %v %v, want the 3 partial files and the save reported", check.IsChanged(), r.Actions, err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("check mode removed %s: %v", p, err)
		}
	}

	r := save(t, c, path)
	if st, err := Status(path, false); err != nil || st != r.Info {
		t.Fatalf("%s: %+v %v, want the complete snapshot %+v", path, st, err, r.Info)
	} else if st.Keys != good.Keys {
		t.Fatalf("%s holds %d keys, want %d", path, st.Keys, good.Keys)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
		if !strings.Contains(strings.Join(r.Actions, "\n"), p) {
			t.Errorf("actions %v do not name %s", r.Actions, p)
		}
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Fatalf("the temporary file of a save under way was removed: %v", err)
	}
	_, err = Save(context.Background(), &module.Task{}, SaveSpec{Conn: spec.Conn, Path: filepath.Join(dir, "live.db"), Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "another save") {
		t.Fatalf("a second save to a path being saved: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "live.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused save wrote live.db: %v", err)
	}
}
