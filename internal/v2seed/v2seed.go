// Package v2seed is test kit for the v2 packages (pkg/v2data, pkg/v2disk): the awkward v2 dataset
// (empty and TTL dirs, TTL keys, hidden keys, a 1 MiB value, a binary value, odd names, a deep tree,
// a wide directory) written to a test cluster, and a wait for a member's newest complete snapshot.
package v2seed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	clientv2 "go.etcd.io/etcd/client/v2"
	"go.etcd.io/etcd/raft/v3/raftpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.uber.org/zap"
)

// KeysAPI is a v2 keys client of the cluster.
func KeysAPI(t testing.TB, c *etcdtest.Cluster) clientv2.KeysAPI {
	t.Helper()
	o := c.ConnOptions()
	cli, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	return clientv2.NewKeysAPI(cli)
}

// Set writes one v2 node or fails the test.
func Set(t testing.TB, kapi clientv2.KeysAPI, key, value string, o *clientv2.SetOptions) {
	t.Helper()
	if _, err := kapi.Set(context.Background(), key, value, o); err != nil {
		t.Fatalf("seed %s: %v", key, err)
	}
}

// Parts of the dataset Seed writes.
var (
	BigValue  = strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	OddNames  = []string{"/names/ünïcødé 日本/κλειδί", "/names/with space & more", "/names/per%cent+plus:colon=eq", "/names/quote\"s"}
	HiddenSet = map[string]string{"/tokens/_hiddenA": "token-a", "/_hiddendir/k": "in a hidden dir",
		"/_hiddendir/_deeper": "hidden in hidden", "/ttldir/_h": "hidden under ttl"}
)

// Seed writes the awkward dataset: empty and TTL dirs, TTL keys, hidden keys (also nested and under
// a TTL dir), a 1 MiB value, a binary value, odd names, a deep tree and a wide directory.
// It returns the leaves whose values are valid UTF-8.
func Seed(t testing.TB, kapi clientv2.KeysAPI, wide int) map[string]string {
	t.Helper()
	leaves := map[string]string{}
	put := func(k, v string, ttl time.Duration) {
		Set(t, kapi, k, v, &clientv2.SetOptions{TTL: ttl})
		leaves[k] = v
	}
	Set(t, kapi, "/empty", "", &clientv2.SetOptions{Dir: true})
	Set(t, kapi, "/ttldir", "", &clientv2.SetOptions{Dir: true, TTL: 300 * time.Second})
	put("/ttldir/a", "under a ttl dir", 0)
	put("/ttldir/sub/b", "deeper under a ttl dir", 0)
	put("/ttlkeys/k1", "ttl 300", 300*time.Second)
	put("/ttlkeys/k2", "ttl 600", 600*time.Second)
	put("/tokens/visible", "token-v", 0)
	for k, v := range HiddenSet {
		put(k, v, 0)
	}
	put("/big/one", BigValue, 0)
	for i, n := range OddNames {
		put(n, fmt.Sprintf("odd %d ✓", i), 0)
	}
	put("/deep/a/b/c/d/e/f/g/h/i/j/k/l/leaf", "deep", 0)
	for i := 0; i < wide; i++ {
		put(WideKey(i), fmt.Sprintf(`{"kind":"Event","n":%d}`, i), 0)
	}
	Set(t, kapi, "/bin/raw", "\xff\xfe\x00binary", nil)
	return leaves
}

// WideKey spreads keys over 40 directories, so concurrent walkers fill the same v3 batches.
func WideKey(i int) string { return fmt.Sprintf("/wide/d-%02d/key-%05d", i%40, i) }

// AwaitNewestSnapshot waits until the member has finished writing snapshots (it may be writing one as
// the test begins) and returns the newest.
func AwaitNewestSnapshot(t testing.TB, dir string) (string, *raftpb.Snapshot) {
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
