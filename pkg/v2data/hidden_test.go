package v2data

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/etcdtest"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.uber.org/zap"
)

// The snapshot is read as etcd reads it, and the path scan finds exactly the paths a full decode of
// the store finds, odd names included; hidden-key discovery then finds every hidden key
// of a member whose store is mostly in a snapshot (as on any long-lived member).
func TestSnapshotScanMatchesADecodeOfTheStore(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	seed(t, keysAPI(t, src), 300)
	snapDir := filepath.Join(src.Members[0].DataDir, "member", "snap")
	_, s := awaitNewestSnapshot(t, snapDir)

	type node struct {
		Path     string
		Children map[string]*node
	}
	var st struct{ Root *node }
	if err := json.Unmarshal(s.Data, &st); err != nil {
		t.Fatal(err)
	}
	var decoded []string
	var walk func(n *node)
	walk = func(n *node) {
		decoded = append(decoded, n.Path)
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(st.Root)
	sort.Strings(decoded)
	if hidden := slices.DeleteFunc(slices.Clone(decoded), func(p string) bool { return !IsHidden(p) }); len(hidden) < len(hiddenSet) {
		t.Fatalf("the snapshot holds only %d hidden paths: %q", len(hidden), hidden)
	}

	f, err := newestSnapshot(snapDir)
	if err != nil || f == nil {
		t.Fatalf("no snapshot read: %v", err)
	}
	defer f.close()
	if f.meta.Index != s.Metadata.Index || f.meta.Term != s.Metadata.Term || !bytes.Equal(f.store, s.Data) {
		t.Fatalf("read index %d term %d (want %d %d), %d bytes of store (want %d)", f.meta.Index, f.meta.Term,
			s.Metadata.Index, s.Metadata.Term, len(f.store), len(s.Data))
	}
	var scanned []string
	err = storePaths(f.store, func(raw []byte) error {
		p, err := unquotePath(raw)
		scanned = append(scanned, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(scanned)
	if !slices.Equal(scanned, decoded) {
		t.Fatalf("scan found %d paths, decode %d:\n%q\n%q", len(scanned), len(decoded), scanned, decoded)
	}

	hidden, err := HiddenPaths(src.Members[0].DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for k := range hiddenSet {
		if !slices.Contains(hidden, k) {
			t.Errorf("hidden key %s not found: %q", k, hidden)
		}
	}
}

// A member may be writing its next snapshot (in place) or defragmenting (db.tmp*) while the copy
// reads its data dir: the scan falls back to the previous snapshot and touches no file.
func TestSnapshotScanSkipsATornSnapshotAndChangesNothing(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	seed(t, keysAPI(t, src), 300)
	live := filepath.Join(src.Members[0].DataDir, "member", "snap")
	dir := t.TempDir()
	newest, want := awaitNewestSnapshot(t, live)
	good, err := os.ReadFile(filepath.Join(live, newest))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		newest:                                   good,
		"ffffffffffffffff-ffffffffffffffff.snap": good[:len(good)/2], // being written
		"db.tmp.12345":                           []byte("a defragmentation in progress"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	f, err := newestSnapshot(dir)
	if err != nil || f == nil || f.meta.Index != want.Metadata.Index {
		t.Fatalf("got %+v, %v; want the intact snapshot at %d", f, err, want.Metadata.Index)
	}
	f.close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(files) {
		t.Fatalf("the snap dir changed: %v", ents)
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err != nil || !bytes.Equal(b, files[e.Name()]) {
			t.Errorf("%s changed (%v)", e.Name(), err)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, newest), good[:len(good)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newestSnapshot(dir); err == nil || !strings.Contains(err.Error(), "no readable v2 snapshot") {
		t.Fatalf("only torn snapshots: want an error, got %v", err)
	}
}

// awaitNewestSnapshot waits until the member has finished writing snapshots (it may be writing one as
// the test begins) and returns the newest.
func awaitNewestSnapshot(t *testing.T, dir string) (string, *raftpb.Snapshot) {
	t.Helper()
	newest := func() string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		name := ""
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".snap") && e.Name() > name {
				name = e.Name()
			}
		}
		return name
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		name := newest()
		time.Sleep(300 * time.Millisecond)
		if name != "" && name == newest() {
			if s, err := snap.Read(zap.NewNop(), filepath.Join(dir, name)); err == nil {
				return name, s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete v2 snapshot in %s (newest: %q)", dir, name)
		}
	}
}
