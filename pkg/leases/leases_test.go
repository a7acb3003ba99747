package leases

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/module"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func spec(prefixes ...Prefix) Spec {
	return Spec{Prefixes: prefixes, MaxKeysPerLease: 1000, MaxTxnOps: 128, PageSize: 1000, Concurrency: 8,
		Timeout: 30 * time.Second}
}

func putN(t *testing.T, cli *clientv3.Client, format string, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf(format, j), fmt.Sprintf("value %d", j)))
		}
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAttachSpreadsKeysOverLeasesAndIsIdempotent(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	ctx := context.Background()
	putN(t, cli, "/kubernetes.io/events/ns/e-%05d", 2500)
	old, _ := cli.Grant(ctx, 7200)
	for i := 0; i < 10; i++ { // already leased: left alone
		cli.Put(ctx, fmt.Sprintf("/kubernetes.io/events/ns/e-%05d", i), fmt.Sprintf("value %d", i), clientv3.WithLease(old.ID))
	}
	cli.Put(ctx, "/kubernetes.io/eventsnot", "value of a key a plain string prefix covers too")
	s := spec(Prefix{"/kubernetes.io/events", time.Hour})

	task := &module.Task{CheckMode: true}
	res, err := Attach(ctx, task, cli, s)
	p := res.Prefixes[0]
	if err != nil || !task.IsChanged() || p.Attached != 2491 || p.AlreadyLeased != 10 || p.LeasesGranted != 3 {
		t.Fatalf("check mode: %v %+v", err, p)
	}
	// etcd 3.2 cannot list leases (Unimplemented); the keys' leases are checked below on every version.
	if l, err := cli.Leases(ctx); status.Code(err) != codes.Unimplemented && (err != nil || len(l.Leases) != 1) {
		t.Fatalf("check mode granted leases: %v %+v", err, l)
	}

	res, err = Attach(ctx, &module.Task{}, cli, s)
	p = res.Prefixes[0]
	if err != nil || p.KeysSeen != 2501 || p.Attached != 2491 || p.AlreadyLeased != 10 || p.Conflicts != 0 || p.LeasesGranted != 3 {
		t.Fatalf("attach: %v %+v", err, p)
	}
	// Before 3.3 a put cannot keep the value it does not send (ignore_value): it is sent again.
	if old := etcdtest.Version() < 303; res.ResentValues != old {
		t.Fatalf("resent_values: %v, want %v for etcd %d", res.ResentValues, old, etcdtest.Version())
	}
	r, _ := cli.Get(ctx, "/kubernetes.io/events", clientv3.WithPrefix())
	perLease := map[clientv3.LeaseID]int{}
	for _, kv := range r.Kvs {
		perLease[clientv3.LeaseID(kv.Lease)]++
		if !strings.HasPrefix(string(kv.Value), "value ") {
			t.Fatalf("%s: value changed to %q", kv.Key, kv.Value)
		}
	}
	if perLease[0] != 0 || perLease[old.ID] != 10 || len(perLease) != 4 {
		t.Fatalf("keys per lease: %v", perLease)
	}
	if l, err := cli.Leases(ctx); status.Code(err) != codes.Unimplemented && (err != nil || len(l.Leases) != 4) { // the lease granted ahead and not used is revoked
		t.Fatalf("leases: %v %+v, want the 3 in use and the old one", err, l)
	}
	for id, n := range perLease {
		ttl, _ := cli.TimeToLive(ctx, id)
		if n > 1000 || (id != old.ID && (ttl.GrantedTTL != 3600 || ttl.TTL < 3500)) {
			t.Fatalf("lease %x: %d keys, %+v", id, n, ttl)
		}
	}

	task = &module.Task{}
	res, err = Attach(ctx, task, cli, s)
	if err != nil || task.IsChanged() || res.Attached != 0 || res.Prefixes[0].AlreadyLeased != 2501 {
		t.Fatalf("re-run: %v changed=%v %+v", err, task.IsChanged(), res.Prefixes[0])
	}

	// force re-leases everything, the 10 keys of the old lease included.
	s.Force = true
	res, err = Attach(ctx, &module.Task{}, cli, s)
	if err != nil || res.Attached != 2501 || res.Prefixes[0].AlreadyLeased != 0 {
		t.Fatalf("force: %v %+v", err, res.Prefixes[0])
	}
	if r, _ := cli.Get(ctx, "/kubernetes.io/events/ns/e-00003"); r.Kvs[0].Lease == int64(old.ID) {
		t.Fatal("force left a key on its old lease")
	}
}

// A key changed between the read and the guarded write is reported and keeps what its writer
// wrote; the rest of the batch is attached, with its values kept (ignore_value) or sent again (for
// members older than etcd 3.3).
func TestGuardReportsChangedKeys(t *testing.T) {
	for _, resend := range []bool{false, true} {
		c := etcdtest.NewCluster(t, 1)
		cli := c.Client(t)
		ctx := context.Background()
		putN(t, cli, "/g/k-%03d", 100)
		r, _ := cli.Get(ctx, "/g/", clientv3.WithPrefix())
		l, _ := cli.Grant(ctx, 60)
		var b []target
		for _, kv := range r.Kvs {
			k := target{key: string(kv.Key), rev: kv.ModRevision, lease: l.ID}
			if resend {
				k.value = kv.Value
			}
			b = append(b, k)
		}
		cli.Put(ctx, "/g/k-007", "written by someone else")
		cli.Delete(ctx, "/g/k-042")
		n, lost, err := guardedAttach(ctx, cli, 10*time.Second, b)
		if err != nil || n != 98 || strings.Join(lost, ",") != "/g/k-007,/g/k-042" {
			t.Fatalf("resend %v: attached %d, lost %v, %v", resend, n, lost, err)
		}
		if g, _ := cli.Get(ctx, "/g/k-007"); string(g.Kvs[0].Value) != "written by someone else" || g.Kvs[0].Lease != 0 {
			t.Fatalf("resend %v: changed key stomped: %+v", resend, g.Kvs[0])
		}
		if g, _ := cli.Get(ctx, "/g/k-042"); len(g.Kvs) != 0 {
			t.Fatalf("resend %v: deleted key re-created", resend)
		}
		if g, _ := cli.Get(ctx, "/g/k-099"); string(g.Kvs[0].Value) != "value 99" || g.Kvs[0].Lease != int64(l.ID) {
			t.Fatalf("resend %v: %+v", resend, g.Kvs[0])
		}
		c.Close()
	}
}

func TestConcurrentWritersAreNotStomped(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	ctx := context.Background()
	putN(t, cli, "/w/cold-%05d", 3000)
	putN(t, cli, "/w/hot-%02d", 20)
	stop := make(chan struct{})
	last := map[string]string{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := fmt.Sprintf("/w/hot-%02d", i%20), fmt.Sprintf("writer %d", i)
			if _, err := cli.Put(ctx, k, v); err == nil {
				last[k] = v
			}
		}
	}()
	res, err := Attach(ctx, &module.Task{}, cli, spec(Prefix{"/w/", 10 * time.Minute}))
	close(stop)
	wg.Wait()
	p := res.Prefixes[0]
	if err != nil || p.Attached+p.Conflicts+p.AlreadyLeased != p.KeysSeen || p.KeysSeen != 3020 {
		t.Fatalf("%v %+v", err, p)
	}
	for _, k := range p.ConflictKeys {
		if !strings.HasPrefix(k, "/w/hot-") {
			t.Fatalf("conflict on a key nobody wrote: %s", k)
		}
	}
	r, _ := cli.Get(ctx, "/w/", clientv3.WithPrefix())
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		if strings.HasPrefix(k, "/w/cold-") && kv.Lease == 0 {
			t.Fatalf("%s not leased", k)
		}
		if v, ok := last[k]; ok && string(kv.Value) != v {
			t.Fatalf("%s: %q, the writer last wrote %q", k, kv.Value, v)
		}
	}
	t.Logf("conflicts reported: %d", p.Conflicts)
}

func TestTTLBelowOneSecondIsRefused(t *testing.T) {
	for _, ttl := range []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond} {
		s := spec(Prefix{"/a", time.Hour}, Prefix{"/b", ttl})
		var pe *module.ParamError
		if err := s.Validate(); !errors.As(err, &pe) || pe.Param != "prefixes[1].ttl" {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
}

// A prefix that covers every key is refused whether it is "" or "/".
func TestWholeKeyspacePrefixIsRefused(t *testing.T) {
	for _, prefix := range []string{"", "/", "//"} {
		s := spec(Prefix{"/a", time.Hour}, Prefix{prefix, time.Hour})
		var pe *module.ParamError
		if err := s.Validate(); !errors.As(err, &pe) || pe.Param != "prefixes[1].prefix" || !strings.Contains(pe.Msg, "covers every key") {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
	}
}

// A max_txn_ops above the server's --max-txn-ops fails naming max_txn_ops, and no key is leased.
func TestTxnOpsAboveServerLimitNamesTheOption(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	putN(t, cli, "/t/k%03d", 200)
	s := spec(Prefix{"/t/", time.Hour})
	s.MaxTxnOps = 200 // the server allows 128
	_, err := Attach(context.Background(), &module.Task{}, cli, s)
	var pe *module.ParamError
	if !errors.As(err, &pe) || pe.Param != "max_txn_ops" || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("err = %v", err)
	}
	got, err := cli.Get(context.Background(), "/t/", clientv3.WithPrefix())
	if err != nil || len(got.Kvs) != 200 {
		t.Fatalf("keys: %v", err)
	}
	for _, kv := range got.Kvs {
		if kv.Lease != 0 {
			t.Fatalf("%s got a lease", kv.Key)
		}
	}
}
