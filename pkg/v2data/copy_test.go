package v2data

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/v2seed"
	"github.com/etcdops/etcd/pkg/module"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func spec(src, dst *etcdtest.Cluster, target string) Spec {
	return Spec{Source: src.ConnOptions(), Dest: dst.ConnOptions(), TargetAPI: target,
		SourceDataDir: src.Members[0].DataDir, Concurrency: 8, Verify: true, InvalidUTF8: "skip",
		MaxTxnOps: 128, MaxKeysPerLease: 1000, LeaseGranularity: 10 * time.Second}
}

func TestCopyToV2(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 1), etcdtest.NewCluster(t, 1)
	skapi, dkapi := v2seed.KeysAPI(t, src), v2seed.KeysAPI(t, dst)
	leaves := v2seed.Seed(t, skapi, 300)
	ctx := context.Background()

	// Default invalid_utf8: fail — everything else is copied, the binary value is named.
	s := spec(src, dst, "v2")
	s.InvalidUTF8 = "fail"
	res, err := Copy(ctx, &module.Task{}, s)
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || res.InvalidUTF8Keys[0] != "/bin/raw" {
		t.Fatalf("want an invalid UTF-8 failure naming /bin/raw, got %v", err)
	}
	if res.Source.Keys != int64(len(leaves)) || res.Source.HiddenKeys != int64(len(v2seed.HiddenSet)) ||
		res.Source.TTLKeys != 2 || res.Source.TTLDirs != 1 || res.Written.Keys != int64(len(leaves)) {
		t.Fatalf("counts: %+v written %+v (want %d keys, %d hidden)", res.Source, res.Written, len(leaves), len(v2seed.HiddenSet))
	}
	if res.Destination == nil || res.Destination.Digest != res.Source.Digest || res.Destination.Dirs != res.Source.Dirs {
		t.Fatalf("verification: source %+v destination %+v", res.Source, res.Destination)
	}
	for k, v := range leaves {
		r, err := dkapi.Get(ctx, k, nil)
		if err != nil || r.Node.Value != v {
			t.Fatalf("%s: %v (value equal: %v)", k, err, err == nil && r.Node.Value == v)
		}
	}
	if _, err := dkapi.Get(ctx, "/bin/raw", nil); !clientv2.IsKeyNotFound(err) {
		t.Fatalf("the binary value must not be copied lossily: %v", err)
	}
	if r, err := dkapi.Get(ctx, "/empty", nil); err != nil || !r.Node.Dir || len(r.Node.Nodes) != 0 {
		t.Fatalf("/empty: %v %+v", err, r)
	}
	for k, want := range map[string]int64{"/ttldir": 300, "/ttlkeys/k1": 300, "/ttlkeys/k2": 600} {
		r, err := dkapi.Get(ctx, k, nil)
		if err != nil || r.Node.TTL < want-30 || r.Node.TTL > want {
			t.Fatalf("%s: ttl %v (%v), want about %d", k, r.Node.TTL, err, want)
		}
	}
	if r, _ := dkapi.Get(ctx, "/ttldir/a", nil); r.Node.TTL != 0 {
		t.Fatalf("/ttldir/a inherits its dir's TTL, it must not get its own: %d", r.Node.TTL)
	}

	// A re-run changes nothing; invalid_utf8: skip accepts the left-out value with a warning.
	task := &module.Task{}
	res, err = Copy(ctx, task, spec(src, dst, "v2"))
	if err != nil || task.IsChanged() || res.Written.Keys+res.Written.Dirs != 0 || !res.Verified {
		t.Fatalf("re-run: %v changed=%v %+v", err, task.IsChanged(), res.Written)
	}
}

func TestCopyToV3(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 1), etcdtest.NewCluster(t, 1)
	leaves := v2seed.Seed(t, v2seed.KeysAPI(t, src), 2000)
	ctx := context.Background()

	// Check mode counts, writes nothing.
	task := &module.Task{CheckMode: true}
	res, err := Copy(ctx, task, spec(src, dst, "v3"))
	cli := dst.Client(t)
	if err != nil || !task.IsChanged() || res.Written.Keys != int64(len(leaves)) {
		t.Fatalf("check mode: %v %+v", err, res.Written)
	}
	if r, _ := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); r.Count != 0 {
		t.Fatalf("check mode wrote %d keys", r.Count)
	}

	res, err = Copy(ctx, &module.Task{}, spec(src, dst, "v3"))
	if err != nil || !res.Verified || res.Written.Keys != int64(len(leaves)) {
		t.Fatalf("copy: %v %+v", err, res)
	}
	expiring := []string{"/ttldir/a", "/ttldir/sub/b", "/ttldir/_h", "/ttlkeys/k1", "/ttlkeys/k2"}
	if res.Destination.TTLKeys != int64(len(expiring)) || res.Written.LeasesGranted != 2 {
		t.Fatalf("want %d leased keys on 2 leases (300s and 600s windows), got %+v / %d leases",
			len(expiring), res.Destination, res.Written.LeasesGranted)
	}
	for k, v := range leaves {
		r, err := cli.Get(ctx, k)
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != v {
			t.Fatalf("%s missing or different in v3: %v", k, err)
		}
	}
	for _, k := range expiring {
		r, _ := cli.Get(ctx, k)
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
		if err != nil || ttl.TTL < 250 || ttl.TTL > 610 {
			t.Fatalf("%s: lease ttl %v %v", k, ttl, err)
		}
	}

	// An interrupted copy leaves some keys missing or half-done: a re-run fills exactly those,
	// including a key that lost its lease.
	cli.Delete(ctx, v2seed.WideKey(7))
	cli.Put(ctx, "/tokens/_hiddenA", "stale")
	cli.Put(ctx, "/ttlkeys/k1", "ttl 300") // same value, no lease: as after `etcdctl migrate`
	task = &module.Task{}
	res, err = Copy(ctx, task, spec(src, dst, "v3"))
	if err != nil || !task.IsChanged() || res.Written.Keys != 3 || !res.Verified {
		t.Fatalf("resume: %v %+v", err, res.Written)
	}
	if r, _ := cli.Get(ctx, "/ttlkeys/k1"); r.Kvs[0].Lease == 0 {
		t.Fatal("resume did not attach the lease")
	}

	// verify_only notices a destination that drifted, and names what differs — in check mode too,
	// since it only reads.
	s := spec(src, dst, "v3")
	s.VerifyOnly = true
	if res, err = Copy(ctx, &module.Task{CheckMode: true}, s); err != nil || !res.Verified {
		t.Fatalf("verify_only in check mode: %v %+v", err, res)
	}
	cli.Put(ctx, v2seed.WideKey(1), "changed")
	res, err = Copy(ctx, &module.Task{}, s)
	if err == nil || len(res.Differences) == 0 || res.Written.Keys != 0 {
		t.Fatalf("verify_only should fail on a changed value: %v %+v", err, res)
	}

	// A source_data_dir without a member log fails before anything is read or written.
	empty := etcdtest.NewCluster(t, 1)
	s = spec(src, empty, "v3")
	s.SourceDataDir = t.TempDir()
	if _, err = Copy(ctx, &module.Task{}, s); err == nil || !strings.Contains(err.Error(), "holds no etcd WAL") {
		t.Fatalf("want a refusal of the data dir, got %v", err)
	}
	if r, _ := empty.Client(t).Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); r.Count != 0 {
		t.Fatalf("the refused copy wrote %d keys", r.Count)
	}

	// require_empty_destination refuses before writing.
	s = spec(src, dst, "v3")
	s.RequireEmptyDestination = true
	if _, err = Copy(ctx, &module.Task{}, s); err == nil || !strings.Contains(err.Error(), "require_empty_destination") {
		t.Fatalf("want a refusal, got %v", err)
	}
}

func TestCopyFailsWhenSourceChanges(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 1), etcdtest.NewCluster(t, 1)
	kapi := v2seed.KeysAPI(t, src)
	v2seed.Seed(t, kapi, 2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a consumer that was not stopped
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				kapi.Set(context.Background(), fmt.Sprintf("/wide/d-00/live-%d", i%10), "x", nil)
			}
		}
	}()
	_, err := Copy(context.Background(), &module.Task{}, spec(src, dst, "v3"))
	close(stop)
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "the source changed during the copy") {
		t.Fatalf("want a source-changed failure, got %v", err)
	}
}

// A copy cancelled half-way (as when the task is killed) leaves a partial destination; the re-run
// completes it without "key exists" failures and verifies, and a third run changes nothing.
func TestInterruptedCopyResumes(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 1), etcdtest.NewCluster(t, 1)
	leaves := v2seed.Seed(t, v2seed.KeysAPI(t, src), 3000)
	dkapi := v2seed.KeysAPI(t, dst)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // interrupt as soon as the first wide directory has some keys
		for ctx.Err() == nil {
			if r, err := dkapi.Get(ctx, "/wide/d-00", nil); err == nil && len(r.Node.Nodes) > 0 {
				cancel()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	s := spec(src, dst, "v2")
	s.Concurrency = 2
	res, err := Copy(ctx, &module.Task{}, s)
	cancel()
	if err == nil || res == nil || res.Written.Keys == 0 || res.Written.Keys >= int64(len(leaves)) {
		t.Fatalf("want an interrupted copy with some keys written, got %v %+v", err, res)
	}
	partial := res.Written.Keys

	task := &module.Task{}
	res, err = Copy(context.Background(), task, spec(src, dst, "v2"))
	if err != nil || !task.IsChanged() || !res.Verified || res.Written.Keys >= int64(len(leaves)) ||
		res.Written.Keys+res.Written.Identical < int64(len(leaves)) {
		t.Fatalf("resume after %d keys: %v %+v", partial, err, res.Written)
	}
	task = &module.Task{}
	if res, err = Copy(context.Background(), task, spec(src, dst, "v2")); err != nil || task.IsChanged() || !res.Verified {
		t.Fatalf("third run: %v changed=%v %+v", err, task.IsChanged(), res.Written)
	}
}

// With one source member down, the copy reads through the others (the playbooks pass every member).
func TestCopyReadsPastAStoppedMember(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 3), etcdtest.NewCluster(t, 1)
	leaves := v2seed.Seed(t, v2seed.KeysAPI(t, src), 100)
	src.Stop(src.Members[0])
	s := spec(src, dst, "v3")
	s.SourceDataDir = src.Members[1].DataDir
	res, err := Copy(context.Background(), &module.Task{}, s)
	if err != nil || !res.Verified || res.Written.Keys != int64(len(leaves)) || res.Source.HiddenKeys != int64(len(v2seed.HiddenSet)) {
		t.Fatalf("%v %+v", err, res)
	}
}

// A source with v2 auth on (users and roles of the v2 API, not v3's): a wrong password is refused
// naming the options to fix, before anything is written; the right one copies and verifies.
func TestCopyFromASourceWithV2Auth(t *testing.T) {
	src, dst := etcdtest.NewCluster(t, 1), etcdtest.NewCluster(t, 1)
	leaves := v2seed.Seed(t, v2seed.KeysAPI(t, src), 200)
	ctx := context.Background()
	o := src.ConnOptions()
	cli, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	if err := clientv2.NewAuthUserAPI(cli).AddUser(ctx, "root", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := clientv2.NewAuthAPI(cli).Enable(ctx); err != nil {
		t.Fatal(err)
	}
	o.User, o.Password = "root", "s3cret"
	admin, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	// v2 auth lets the guest role read and write everything until that is revoked.
	if _, err := clientv2.NewAuthRoleAPI(admin).RevokeRoleKV(ctx, "guest", []string{"/*"}, clientv2.ReadWritePermission); err != nil {
		t.Fatal(err)
	}

	for name, password := range map[string]string{"wrong password": "wrong", "no credentials": ""} {
		s := spec(src, dst, "v3")
		s.Source.User, s.Source.Password, s.Source.Prefix = "root", password, "source."
		if password == "" {
			s.Source.User = ""
		}
		_, err := Copy(ctx, &module.Task{}, s)
		if err == nil || !strings.Contains(err.Error(), "source.user and source.password") {
			t.Fatalf("%s: want a refusal naming source.user and source.password, got %v", name, err)
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), "wrong") {
			t.Fatalf("%s: the password is in the error: %v", name, err)
		}
		if r, err := dst.Client(t).Get(ctx, "", clientv3.WithFromKey(), clientv3.WithCountOnly()); err != nil || r.Count != 0 {
			t.Fatalf("%s: the destination must stay empty: %v %v", name, r, err)
		}
	}

	s := spec(src, dst, "v3")
	s.Source.User, s.Source.Password = "root", "s3cret"
	res, err := Copy(ctx, &module.Task{}, s)
	if err != nil || !res.Verified || res.Written.Keys != int64(len(leaves)) {
		t.Fatalf("with the right password: %v %+v", err, res)
	}
}

// A v2 copy into the source's own cluster under another endpoint name is refused before anything is
// written; comparing the two (verify_only) is allowed: the clean-up compares the cluster with the copy
// it was rebuilt from, force-new-cluster the members of one cluster.
func TestV2CopyIntoItsOwnClusterIsRefused(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	v2seed.Seed(t, v2seed.KeysAPI(t, c), 100)
	s := spec(c, c, "v2")
	s.Dest.Endpoints = []string{strings.Replace(c.Members[0].ClientURL, "127.0.0.1", "localhost", 1)}
	s.Dest.Prefix = "destination."
	task := &module.Task{}
	_, err := Copy(context.Background(), task, s)
	var pe *module.ParamError
	if !errors.As(err, &pe) || pe.Param != "destination.endpoints" || !strings.Contains(pe.Msg, "the source's own cluster (cluster ID ") || task.IsChanged() {
		t.Fatalf("want a refusal naming destination.endpoints and the cluster ID, nothing changed; got %v (changed %v)", err, task.IsChanged())
	}
	s.VerifyOnly = true
	res, err := Copy(context.Background(), &module.Task{}, s)
	if err != nil || !res.Verified {
		t.Fatalf("verify_only within one cluster: %v %+v", err, res)
	}
}
