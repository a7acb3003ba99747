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

// The streaming snapshot scan finds exactly the paths a full decode of the store finds, odd and
// hidden names included, whatever the buffer size; hidden-key discovery then finds every hidden key
// of a member whose store is mostly in a snapshot (as on any long-lived member).
func TestSnapshotScanMatchesADecodeOfTheStore(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	seed(t, keysAPI(t, src), 300)
	snapDir := filepath.Join(src.Members[0].DataDir, "member", "snap")
	_, s := newestSnapshot(t, snapDir)

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
		if strings.Contains(n.Path, "/_") {
			decoded = append(decoded, n.Path)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(st.Root)
	sort.Strings(decoded)
	if len(decoded) < len(hiddenSet) {
		t.Fatalf("the snapshot holds only %d hidden paths: %q", len(decoded), decoded)
	}

	for _, size := range []int{1 << 20, 7, 16, 1000} { // 7: shorter than the key itself
		scan := &pathScan{buf: make([]byte, size)}
		if err := scan.stream(bytes.NewReader(s.Data), int64(len(s.Data))); err != nil {
			t.Fatal(err)
		}
		sort.Strings(scan.paths)
		if !slices.Equal(scan.paths, decoded) {
			t.Fatalf("buffer %d: scan found %d paths, decode %d:\n%q\n%q", size, len(scan.paths), len(decoded), scan.paths, decoded)
		}
	}
	paths, meta, err := newestSnapshotPaths(snapDir)
	sort.Strings(paths)
	if err != nil || !slices.Equal(paths, decoded) || meta.Index != s.Metadata.Index || meta.Term != s.Metadata.Term {
		t.Fatalf("file scan: %v, index %d term %d (want %d %d), %q", err, meta.Index, meta.Term, s.Metadata.Index, s.Metadata.Term, paths)
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
	newest, want := newestSnapshot(t, live)
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

	_, meta, err := newestSnapshotPaths(dir)
	if err != nil || meta.Index != want.Metadata.Index {
		t.Fatalf("got index %d, %v; want the intact snapshot at %d", meta.Index, err, want.Metadata.Index)
	}
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
	if _, _, err := newestSnapshotPaths(dir); err == nil || !strings.Contains(err.Error(), "no readable v2 snapshot") {
		t.Fatalf("only torn snapshots: want an error, got %v", err)
	}
}

// newestSnapshot waits until the member has finished writing snapshots (it may be writing one as
// the test begins) and returns the newest.
func newestSnapshot(t *testing.T, dir string) (string, *raftpb.Snapshot) {
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
