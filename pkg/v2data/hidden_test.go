package v2data

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/etcdops/etcd/pkg/etcdtest"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.uber.org/zap"
)

// The snapshot scan finds exactly the paths a full decode of the store finds, odd and hidden names
// included, and hidden-key discovery finds every hidden key of a member whose store is mostly in a
// snapshot (as on any long-lived member).
func TestStorePathsMatchesADecodeOfTheSnapshot(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	seed(t, keysAPI(t, src), 300)
	s, err := snap.New(zap.NewNop(), filepath.Join(src.Members[0].DataDir, "member", "snap")).Load()
	if err != nil {
		t.Fatalf("the member took no v2 snapshot: %v", err)
	}

	var scanned []string
	if err := storePaths(s.Data, func(p string) { scanned = append(scanned, p) }); err != nil {
		t.Fatal(err)
	}
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
	sort.Strings(scanned)
	sort.Strings(decoded)
	if !slices.Equal(scanned, decoded) {
		t.Fatalf("scan found %d paths, decode %d:\n%q\n%q", len(scanned), len(decoded), scanned, decoded)
	}
	for _, odd := range oddNames {
		if !slices.Contains(scanned, storeKeysPrefix+odd) { // written before the wide keys: in the snapshot
			t.Errorf("%s not in the snapshot scan", odd)
		}
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
