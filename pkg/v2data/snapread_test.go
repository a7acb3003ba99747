package v2data

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/v2seed"
	"github.com/etcdops/etcd/pkg/module"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// snapshotSource is a source whose store is mostly in a v2 snapshot: with 250 entries between
// snapshots, seeding 300 wide keys takes exactly one, and the rest (and a test's own writes) stay in
// the WAL after it.
func snapshotSource(t *testing.T) (*etcdtest.Cluster, clientv2.KeysAPI, map[string]string) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "250"}})
	kapi := v2seed.KeysAPI(t, src)
	leaves := v2seed.Seed(t, kapi, 300)
	v2seed.AwaitNewestSnapshot(t, filepath.Join(src.Members[0].DataDir, "member", "snap"))
	return src, kapi, leaves
}

// v3Keys returns a destination's keys with their values, and which of them have a lease.
func v3Keys(t *testing.T, c *etcdtest.Cluster) (map[string]string, map[string]int64) {
	t.Helper()
	cli := c.Client(t)
	r, err := cli.Get(context.Background(), "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	kvs, leased := map[string]string{}, map[string]int64{}
	for _, kv := range r.Kvs {
		kvs[string(kv.Key)] = string(kv.Value)
		if kv.Lease != 0 {
			ttl, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(kv.Lease))
			if err != nil {
				t.Fatal(err)
			}
			leased[string(kv.Key)] = ttl.TTL
		}
	}
	return kvs, leased
}

// A copy into v3 reads the member's v2 snapshot, and through the API whatever was written after it
// (changed, deleted, created with new parents, created in order, hidden, a TTL refreshed, a tree
// deleted): the destination ends up exactly as after a copy that read everything through the API.
func TestCopyReadsTheSnapshotAndWhatWasWrittenAfterIt(t *testing.T) {
	src, kapi, leaves := snapshotSource(t)
	ctx := context.Background()
	v2seed.Set(t, kapi, v2seed.WideKey(3), "changed after the snapshot", nil)
	leaves[v2seed.WideKey(3)] = "changed after the snapshot"
	if _, err := kapi.Delete(ctx, v2seed.WideKey(4), nil); err != nil {
		t.Fatal(err)
	}
	delete(leaves, v2seed.WideKey(4))
	for k, v := range map[string]string{"/after/new/deep/key": "created after", "/tokens/_after": "hidden, after"} {
		v2seed.Set(t, kapi, k, v, nil)
		leaves[k] = v
	}
	if _, err := kapi.Delete(ctx, "/deep/a/b/c", &clientv2.DeleteOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	delete(leaves, "/deep/a/b/c/d/e/f/g/h/i/j/k/l/leaf")
	r, err := kapi.CreateInOrder(ctx, "/wide/d-01", "in order", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaves[r.Node.Key] = "in order"
	v2seed.Set(t, kapi, "/ttlkeys/k1", "", &clientv2.SetOptions{Refresh: true, TTL: 900 * time.Second, PrevExist: clientv2.PrevExist})

	snap := etcdtest.NewCluster(t, 1)
	res, err := Copy(ctx, &module.Task{}, spec(src, snap, "v3"))
	if err != nil || res.SourceRead != "snapshot" || !res.Verified || res.Written.Keys != int64(len(leaves)) {
		t.Fatalf("copy: %v, read from %q (%s), verified %v, %d keys written of %d", err, res.SourceRead,
			res.SourceReadNote, res.Verified, res.Written.Keys, len(leaves))
	}
	kvs, leased := v3Keys(t, snap)
	for k, v := range leaves {
		if kvs[k] != v {
			t.Errorf("%s: %.40q, want %.40q", k, kvs[k], v)
		}
	}
	if len(kvs) != len(leaves) {
		t.Errorf("%d keys in v3, want %d", len(kvs), len(leaves))
	}
	if ttl := leased["/ttlkeys/k1"]; ttl < 800 {
		t.Errorf("/ttlkeys/k1 was refreshed to 900s after the snapshot; its lease has %ds", ttl)
	}

	api := etcdtest.NewCluster(t, 1)
	s := spec(src, api, "v3")
	s.SourceRead = "api"
	if res, err = Copy(ctx, &module.Task{}, s); err != nil || res.SourceRead != "api" || res.SourceReadNote != "" {
		t.Fatalf("api copy: %v %q %q", err, res.SourceRead, res.SourceReadNote)
	}
	kvsAPI, leasedAPI := v3Keys(t, api)
	if len(kvsAPI) != len(kvs) || len(leasedAPI) != len(leased) {
		t.Fatalf("read from the API: %d keys (%d leased); from the snapshot: %d (%d)", len(kvsAPI), len(leasedAPI), len(kvs), len(leased))
	}
	for k, v := range kvsAPI {
		if kvs[k] != v {
			t.Errorf("%s differs between the two reads", k)
		}
		if ttl, ok := leased[k]; ok != (leasedAPI[k] != 0) || ttl > leasedAPI[k]+5 || ttl < leasedAPI[k]-5 {
			t.Errorf("%s: lease of %ds from the snapshot read, %ds from the API read", k, ttl, leasedAPI[k])
		}
	}
}

// The snapshot is read only when it provably is the live store; otherwise the API, with the reason.
func TestCopyReadsTheAPIWhenTheSnapshotIsNotCurrent(t *testing.T) {
	src, kapi, leaves := snapshotSource(t)
	ctx := context.Background()

	// A copy of the member's data dir taken before the last writes: behind the cluster.
	m := src.Members[0]
	src.Stop(m)
	stale := filepath.Join(t.TempDir(), "etcd")
	if out, err := exec.Command("cp", "-a", m.DataDir, stale).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := src.Start(m); err != nil {
		t.Fatal(err)
	}
	src.WaitReady(t)
	v2seed.Set(t, kapi, "/after/stale", "written after the copy of the data dir", nil)
	leaves["/after/stale"] = "written after the copy of the data dir"

	// And the data dir of another cluster.
	other, _, _ := snapshotSource(t)
	for dir, why := range map[string]string{stale: "behind the cluster", other.Members[0].DataDir: "belongs to cluster"} {
		dst := etcdtest.NewCluster(t, 1)
		s := spec(src, dst, "v3")
		s.SourceDataDir = dir
		res, err := Copy(ctx, &module.Task{}, s)
		if err != nil || res.SourceRead != "api" || !strings.Contains(res.SourceReadNote, why) {
			t.Fatalf("%s: %v, read from %q: %q (want %q)", dir, err, res.SourceRead, res.SourceReadNote, why)
		}
		if kvs, _ := v3Keys(t, dst); kvs["/after/stale"] == "" || (dir == stale && len(kvs) != len(leaves)) {
			t.Fatalf("%s: %d keys copied, want %d", dir, len(kvs), len(leaves))
		}
	}
}

// A prefix inside a directory with a TTL expires with it, though the API shows only a node's own TTL:
// a v3 copy leases its keys (deadlines are rounded up to the 10 s lease windows), read from the snapshot or the API, also after the directory's TTL was
// refreshed above the prefix; a v2 copy recreates the directory with its TTL, and nothing else of it.
func TestCopyPrefixInsideADirectoryWithATTL(t *testing.T) {
	src, kapi, _ := snapshotSource(t)
	ctx := context.Background()
	check := func(target, read string, ttlMin, ttlMax int64) {
		t.Helper()
		dst := etcdtest.NewCluster(t, 1)
		s := spec(src, dst, target)
		s.SourceRead, s.Scope = read, Scope{Prefixes: []string{"/ttldir/sub"}}
		res, err := Copy(ctx, &module.Task{}, s)
		if err != nil || !res.Verified || res.Written.Keys != 1 {
			t.Fatalf("%s from %s: %v %+v", target, read, err, res)
		}
		if target == "v2" {
			dir, err := v2seed.KeysAPI(t, dst).Get(ctx, "/ttldir", nil)
			if err != nil || dir.Node.TTL < ttlMin || dir.Node.TTL > ttlMax || len(dir.Node.Nodes) != 1 {
				t.Fatalf("v2: /ttldir in the destination: %v %+v", err, dir)
			}
			return
		}
		if res.SourceRead != read && read != "auto" {
			t.Fatalf("read from %s, want %s", res.SourceRead, read)
		}
		_, leased := v3Keys(t, dst)
		if ttl := leased["/ttldir/sub/b"]; len(leased) != 1 || ttl < ttlMin || ttl > ttlMax {
			t.Fatalf("v3 from %s (%s): leases %v, want /ttldir/sub/b with %d-%ds", read, res.SourceRead, leased, ttlMin, ttlMax)
		}
	}
	check("v3", "auto", 250, 310)
	check("v3", "api", 250, 310)
	check("v2", "auto", 250, 300)

	_, err := kapi.Set(ctx, "/ttldir", "", &clientv2.SetOptions{Dir: true, TTL: 900 * time.Second, PrevExist: clientv2.PrevExist})
	if err != nil && etcdtest.Binary() == "" {
		t.Skipf("the embedded etcd 3.5 refuses to update a directory's TTL (%v); 3.4 takes it", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	check("v3", "auto", 850, 910)
}
