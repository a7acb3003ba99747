package v2migrate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/v2seed"
	"github.com/etcdops/etcd/pkg/v2disk"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
)

// A member whose store is partly in a snapshot and partly in the WAL after it (a write and a delete
// past the last snapshot), migrated while stopped: its db holds exactly what `etcdctl migrate` writes
// (same revisions, same bytes, same consistent index) plus the hidden keys, and the member starts on
// it serving every key with its value. A second migration is refused, changing nothing.
func TestMigrateMatchesEtcdctlMigratePlusHiddenKeys(t *testing.T) {
	c := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	kapi := v2seed.KeysAPI(t, c)
	leaves := v2seed.Seed(t, kapi, 300)
	v2seed.AwaitNewestSnapshot(t, filepath.Join(c.Members[0].DataDir, "member", "snap"))
	v2seed.Set(t, kapi, "/after/snapshot", "written after the snapshot", nil)
	leaves["/after/snapshot"] = "written after the snapshot"
	if _, err := kapi.Delete(context.Background(), v2seed.WideKey(7), nil); err != nil {
		t.Fatal(err)
	}
	delete(leaves, v2seed.WideKey(7))
	m := c.Members[0]
	c.Stop(m)

	theirs := etcdctlMigrate(t, m.DataDir)
	res, err := Migrate(Config{DataDir: m.DataDir, TxnKeys: 50}) // several transactions
	if err != nil {
		t.Fatal(err)
	}
	if res.Hidden != len(v2seed.HiddenSet) || res.Keys < len(leaves) {
		t.Errorf("result %+v: want %d hidden keys and at least %d keys", res, len(v2seed.HiddenSet), len(leaves))
	}
	ours := readKeyBucket(t, m.DataDir)
	// The keys under a v2 TTL (the TTL dir's, its hidden one too, and the TTL keys) carry a lease of their
	// remaining TTL, sharing one per 10 s window; no other key has one.
	ttlKeys := map[string]int64{"/ttldir/a": 300, "/ttldir/sub/b": 300, "/ttldir/_h": 300, "/ttlkeys/k1": 300, "/ttlkeys/k2": 600}
	leases := readLeases(t, m.DataDir)
	if res.Leases != 2 || len(leases) != 2 || res.Expired != 0 {
		t.Errorf("result %+v, lease bucket %v: want 2 leases (300 s and 600 s windows), nothing expired", res, leases)
	}
	withoutLease := map[string][]byte{}
	for rev, raw := range ours.kvs {
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		want, ttl := ttlKeys[string(kv.Key)]
		if got := leases[kv.Lease]; ttl != (kv.Lease != 0) || ttl && (got > want+10 || got < want-30) {
			t.Errorf("%s: lease %x of %d s; want one of about %d s (rounded up to 10 s) exactly for the TTL keys", kv.Key, kv.Lease, got, want)
		}
		kv.Lease = 0
		withoutLease[rev], _ = kv.Marshal()
	}
	if theirs != nil {
		for rev, kv := range theirs.kvs {
			if !bytes.Equal(withoutLease[rev], kv) {
				t.Errorf("revision %x: etcdctl migrate wrote %q, ours (but its lease) %q", rev, kv, withoutLease[rev])
			}
		}
		if len(ours.kvs) != len(theirs.kvs)+len(v2seed.HiddenSet) {
			t.Errorf("%d keys, etcdctl migrate %d: want its keys and the %d hidden ones", len(ours.kvs), len(theirs.kvs), len(v2seed.HiddenSet))
		}
		if ours.index != theirs.index {
			t.Errorf("consistent index %d, etcdctl migrate's %d", ours.index, theirs.index)
		}
	}
	if ours.index != res.Index {
		t.Errorf("consistent index %d, result %d", ours.index, res.Index)
	}

	again, err := Migrate(Config{DataDir: m.DataDir})
	if err == nil || !strings.Contains(err.Error(), "already holds keys") {
		t.Errorf("a second migration: %+v, %v; want a refusal", again, err)
	}
	if after := readKeyBucket(t, m.DataDir); len(after.kvs) != len(ours.kvs) {
		t.Errorf("the refused migration changed the db: %d keys, was %d", len(after.kvs), len(ours.kvs))
	}

	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := c.Client(t)
	for k, v := range leaves {
		resp, err := cli.Get(ctx, k)
		switch {
		case err != nil:
			t.Fatal(err)
		case len(resp.Kvs) != 1:
			t.Errorf("%s is not in v3 after the start", k)
		case string(resp.Kvs[0].Value) != v:
			t.Errorf("%s: %d bytes in v3, want %d", k, len(resp.Kvs[0].Value), len(v))
		}
	}
	if resp, err := cli.Get(ctx, v2seed.WideKey(7)); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("%s, deleted after the snapshot, is in v3: %v %v", v2seed.WideKey(7), resp, err)
	}
	// etcd attached the keys to the leases it read: each runs (its TTL counted from the start).
	for k := range ttlKeys {
		resp, err := cli.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			t.Errorf("%s after the start: %v %v; want it with its lease", k, resp, err)
			continue
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease), clientv3.WithAttachedKeys())
		if err != nil || ttl.TTL <= 0 || !slices.ContainsFunc(ttl.Keys, func(b []byte) bool { return string(b) == k }) {
			t.Errorf("%s: its lease %x after the start: %+v %v", k, resp.Kvs[0].Lease, ttl, err)
		}
	}
}

// readLeases returns the db's lease bucket: ID → TTL.
func readLeases(t *testing.T, dataDir string) map[int64]int64 {
	t.Helper()
	db, err := bolt.Open(dbPath(dataDir), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[int64]int64{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(leaseBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var l leasepb.Lease
			if err := l.Unmarshal(v); err != nil {
				return err
			}
			if int64(binary.BigEndian.Uint64(k)) != l.ID {
				return fmt.Errorf("lease %x under key %x", l.ID, k)
			}
			out[l.ID] = l.TTL
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A migration later than some keys' v2 deadlines leaves them out (v2 expires them at its next expiry run);
// the others' leases count what was left of their TTL then.
func TestMigrateLeavesOutExpiredKeys(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	kapi := v2seed.KeysAPI(t, c)
	v2seed.Set(t, kapi, "/ttl/short", "gone by the migration", &clientv2.SetOptions{TTL: 2 * time.Second})
	v2seed.Set(t, kapi, "/ttl/long", "still there", &clientv2.SetOptions{TTL: time.Hour})
	v2seed.Set(t, kapi, "/steady", "no ttl", nil)
	m := c.Members[0]
	c.Stop(m)
	res, err := Migrate(Config{DataDir: m.DataDir, Now: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 2 || res.Expired != 1 || res.Leases != 1 {
		t.Fatalf("result %+v: want 2 keys, 1 expired, 1 lease", res)
	}
	for _, ttl := range readLeases(t, m.DataDir) {
		if ttl > 3600-60+10 || ttl < 3600-90 { // rounded up to 10 s
			t.Errorf("lease of %d s; want what was left of an hour a minute on", ttl)
		}
	}
}

// Check mode reads and counts, writing nothing, also beside the running member (a check-mode run stopped
// nothing); a real migration of a running member's locked db is refused, naming the fix.
func TestMigrateCheckOnlyAndRunningMember(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	kapi := v2seed.KeysAPI(t, c)
	v2seed.Set(t, kapi, "/a/b", "c", nil)
	v2seed.Set(t, kapi, "/a/_hidden", "h", &clientv2.SetOptions{})
	m := c.Members[0]
	if res, err := Migrate(Config{DataDir: m.DataDir, CheckOnly: true}); err != nil || res.Keys != 2 || res.Hidden != 1 {
		t.Errorf("check only beside the running member: %+v %v; want 2 keys, 1 hidden", res, err)
	}
	if etcdtest.Binary() != "" { // an embedded member shares this process: bolt's lock does not keep it out
		if _, err := Migrate(Config{DataDir: m.DataDir}); err == nil || !strings.Contains(err.Error(), "stop the member's etcd first") {
			t.Errorf("migrating a running member: %v", err)
		}
	}
	c.Stop(m)
	res, err := Migrate(Config{DataDir: m.DataDir, CheckOnly: true})
	if err != nil || res.Keys != 2 || res.Hidden != 1 {
		t.Errorf("check only: %+v %v; want 2 keys, 1 hidden", res, err)
	}
	if got := readKeyBucket(t, m.DataDir); len(got.kvs) != 0 {
		t.Errorf("check only wrote %d keys", len(got.kvs))
	}
	if _, err := Migrate(Config{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "holds no member/wal") {
		t.Errorf("an empty data dir: %v", err)
	}
}

type migrated struct {
	kvs   map[string][]byte // revision key → KeyValue
	index uint64
}

func readKeyBucket(t *testing.T, dataDir string) migrated {
	t.Helper()
	db, err := bolt.Open(dbPath(dataDir), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := migrated{kvs: map[string][]byte{}}
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(keyBucket); b != nil {
			if err := b.ForEach(func(k, v []byte) error { out.kvs[string(k)] = bytes.Clone(v); return nil }); err != nil {
				return err
			}
		}
		if b := tx.Bucket(metaBucket); b != nil {
			if v := b.Get([]byte("consistent_index")); len(v) == 8 {
				out.index = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// etcdctlMigrate runs the server version's `etcdctl migrate` (the etcdctl beside ETCDTEST_BIN) on a
// copy of the data dir and reads what it wrote; nil where there is none: the embedded 3.5 server (an
// older etcdctl refuses a 3.5 member dir, and 3.5's has no migrate), or no etcdctl beside the server.
func etcdctlMigrate(t *testing.T, dataDir string) *migrated {
	t.Helper()
	if etcdtest.Binary() == "" {
		t.Log("the embedded etcd 3.5: no etcdctl migrate of its version to compare with")
		return nil
	}
	etcdctl := filepath.Join(filepath.Dir(etcdtest.Binary()), "etcdctl")
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(etcdctl, args...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		return cmd.CombinedOutput()
	}
	if out, err := run("migrate", "--help"); err != nil || !strings.Contains(string(out), "data-dir") {
		t.Logf("no etcdctl migrate to compare with (%s: %v)", etcdctl, err)
		return nil
	}
	cp := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dataDir, cp).CombinedOutput(); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	if out, err := run("migrate", "--data-dir", cp); err != nil {
		t.Fatalf("etcdctl migrate: %s %v", out, err)
	}
	m := readKeyBucket(t, cp)
	return &m
}

// A member migrated as of an entry of its log before the last (Index, Term: where another member's log
// ends): the store as of that entry, that entry's index as the consistent index. An index past the log's
// end, one the newest snapshot is past, or a term the entry does not have is refused, writing nothing.
func TestMigrateAtAnIndexOfTheLog(t *testing.T) {
	c := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "100"}})
	kapi := v2seed.KeysAPI(t, c)
	v2seed.Seed(t, kapi, 150)
	m := c.Members[0]
	v2seed.AwaitNewestSnapshot(t, filepath.Join(m.DataDir, "member", "snap"))
	v2seed.Set(t, kapi, "/at/index", "deleted after it", nil)
	at, err := v2disk.LogPosition(m.DataDir) // the running member's log: the write is in it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kapi.Delete(context.Background(), "/at/index", nil); err != nil {
		t.Fatal(err)
	}
	c.Stop(m)
	end, err := v2disk.LogPosition(m.DataDir)
	switch {
	case err != nil:
		t.Fatal(err)
	case end.SnapshotIndex == 0 || end.SnapshotIndex > at.LastIndex || end.LastIndex <= at.LastIndex || end.LastTerm != at.LastTerm ||
		end.Commit != end.LastIndex || end.MemberID == "" || end.ClusterID == "":
		t.Fatalf("log positions: at the write %+v, stopped %+v", at, end)
	}
	copyOf := func() string {
		dir := filepath.Join(t.TempDir(), "copy")
		if out, err := exec.Command("cp", "-a", m.DataDir, dir).CombinedOutput(); err != nil {
			t.Fatalf("%s %v", out, err)
		}
		return dir
	}
	for _, bad := range []struct {
		cfg  Config
		want string
	}{
		{Config{Index: end.LastIndex + 1}, "the log ends at index"},
		{Config{Index: end.SnapshotIndex - 1}, "the newest v2 snapshot ends at index"},
		{Config{Index: at.LastIndex, Term: at.LastTerm + 1}, "the members' logs differ"},
	} {
		bad.cfg.DataDir = copyOf()
		if _, err := Migrate(bad.cfg); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.cfg, err, bad.want)
		}
		if got := readKeyBucket(t, bad.cfg.DataDir); len(got.kvs) != 0 {
			t.Errorf("%+v: a refused migration wrote %d keys", bad.cfg, len(got.kvs))
		}
	}

	res, err := Migrate(Config{DataDir: m.DataDir, Index: at.LastIndex, Term: at.LastTerm})
	if err != nil {
		t.Fatal(err)
	}
	got := readKeyBucket(t, m.DataDir)
	if res.Index != at.LastIndex || got.index != at.LastIndex {
		t.Errorf("consistent index %d (result %d), want the given %d", got.index, res.Index, at.LastIndex)
	}
	found := false
	for _, raw := range got.kvs {
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		found = found || string(kv.Key) == "/at/index"
	}
	if !found {
		t.Errorf("/at/index, written before index %d and deleted after it, is not in v3", at.LastIndex)
	}
}

// Three members, stopped one after the other, each migrated at the lowest last index of their logs: every
// member's db holds the same keys at the same revisions, and each key's revision is its v2 modified index
// as the cluster served it. A member restarted after the snapshots published its attributes into the
// store past every member's snapshot: those writes move the store's index in etcd, and so here.
func TestEveryMemberMigratedAtOneIndexHoldsTheSameData(t *testing.T) {
	// Seeded past the first snapshot, and not near the second after the restart.
	c := etcdtest.NewCluster(t, 3, etcdtest.Options{Extra: map[string]string{"snapshot-count": "300"}})
	kapi := v2seed.KeysAPI(t, c)
	v2seed.Seed(t, kapi, 320)
	for _, m := range c.Members {
		v2seed.AwaitNewestSnapshot(t, filepath.Join(m.DataDir, "member", "snap"))
	}
	c.Stop(c.Members[1])
	if err := c.Start(c.Members[1]); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		v2seed.Set(t, kapi, fmt.Sprintf("/after/restart/%d", i), "v", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := map[string]uint64{}
	resp, err := kapi.Get(ctx, "/", &clientv2.GetOptions{Recursive: true, Quorum: true})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *clientv2.Node)
	walk = func(n *clientv2.Node) {
		if !n.Dir {
			served[n.Key] = n.ModifiedIndex
		}
		for _, k := range n.Nodes {
			walk(k)
		}
	}
	walk(resp.Node)
	for _, m := range c.Members {
		c.Stop(m)
	}
	var at v2disk.Position
	for i, m := range c.Members {
		p, err := v2disk.LogPosition(m.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if p.SnapshotIndex == 0 || p.SnapshotIndex > 600 {
			t.Fatalf("%s: %+v; want one snapshot, before the restart", m.Name, p)
		}
		if i == 0 || p.LastIndex < at.LastIndex {
			at = p
		}
	}
	var first migrated
	for i, m := range c.Members {
		if _, err := Migrate(Config{DataDir: m.DataDir, Index: at.LastIndex, Term: at.LastTerm}); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		got := readKeyBucket(t, m.DataDir)
		if i == 0 {
			first = got
			continue
		}
		if got.index != first.index || len(got.kvs) != len(first.kvs) {
			t.Errorf("%s: %d keys at consistent index %d, the first member %d at %d", m.Name, len(got.kvs), got.index, len(first.kvs), first.index)
		}
		for rev, kv := range first.kvs {
			if !bytes.Equal(got.kvs[rev], kv) {
				t.Errorf("%s: revision %x holds %q, the first member %q", m.Name, rev, got.kvs[rev], kv)
			}
		}
	}
	checked := 0
	for _, raw := range first.kvs {
		var kv mvccpb.KeyValue
		if err := kv.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if want, ok := served[string(kv.Key)]; ok {
			checked++
			if uint64(kv.ModRevision) != want {
				t.Errorf("%s: revision %d, the v2 modified index %d", kv.Key, kv.ModRevision, want)
			}
		}
	}
	if checked < 340 {
		t.Errorf("only %d keys compared with the v2 modified index", checked)
	}
}
