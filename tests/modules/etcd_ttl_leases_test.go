package modules

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/leases"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type ttlLeasesResult struct {
	leases.Result
	ansibletest.Flags
}

func runTTLLeases(t *testing.T, args map[string]any, o ansibletest.Opts) ttlLeasesResult {
	return ansibletest.ModuleAs[ttlLeasesResult](t, "etcd_ttl_leases", args, o)
}

// Through real Ansible with the default (OpenShift) prefix list: check mode, attach, re-run.
func TestTTLLeasesModule(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	cli := c.Client(t)
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		cli.Put(ctx, fmt.Sprintf("/kubernetes.io/events/ns/e%03d", i), "event")
	}
	cli.Put(ctx, "/kubernetes.io/masterleases/10.0.0.1", "lease")
	cli.Put(ctx, "/kubernetes.io/pods/ns/p", "no TTL prefix")
	args := withArgs(c.Args(), map[string]any{"max_keys_per_lease": 100})

	res := runTTLLeases(t, args, ansibletest.Opts{Check: true})
	if res.Failed || !res.Changed || res.Attached != 301 || len(res.Prefixes) != 5 || res.Prefixes[0].LeasesGranted != 3 {
		t.Fatalf("check mode: %s %+v", res.Msg, res.Result)
	}
	if l, _ := cli.Leases(ctx); len(l.Leases) != 0 {
		t.Fatalf("check mode granted %d leases", len(l.Leases))
	}

	res = runTTLLeases(t, args, ansibletest.Opts{})
	if res.Failed || !res.Changed || res.Attached != 301 || res.Conflicts != 0 {
		t.Fatalf("attach: %s %+v", res.Msg, res.Result)
	}
	for key, ttl := range map[string]int64{"/kubernetes.io/events/ns/e007": 3600, "/kubernetes.io/masterleases/10.0.0.1": 10} {
		r, _ := cli.Get(ctx, key)
		l, err := cli.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
		if err != nil || l.GrantedTTL != ttl || string(r.Kvs[0].Value) == "" {
			t.Fatalf("%s: lease %+v %v", key, l, err)
		}
	}
	if r, _ := cli.Get(ctx, "/kubernetes.io/pods/ns/p"); r.Kvs[0].Lease != 0 {
		t.Fatal("a key outside the prefixes got a lease")
	}

	res = runTTLLeases(t, args, ansibletest.Opts{})
	if res.Failed || res.Changed || res.Attached != 0 || res.Prefixes[0].AlreadyLeased != 300 {
		t.Fatalf("re-run: %s %+v", res.Msg, res.Result)
	}
}

func TestTTLLeasesModuleBadInput(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	for name, tc := range map[string]struct {
		extra map[string]any
		want  string
	}{
		"ttl below 1s": {map[string]any{"prefixes": []any{map[string]any{"prefix": "/a", "ttl": "500ms"}}},
			"parameter prefixes[0].ttl: is 500ms; leases have whole-second TTLs of at least 1s"},
		"ttl missing":  {map[string]any{"prefixes": []any{map[string]any{"prefix": "/a"}}}, "parameter prefixes[0].ttl: is required"},
		"empty prefix": {map[string]any{"prefixes": []any{map[string]any{"prefix": "", "ttl": 10}}}, `parameter prefixes[0].prefix: is "", which covers every key`},
		"slash prefix": {map[string]any{"prefixes": []any{map[string]any{"prefix": "/", "ttl": 10}}}, `parameter prefixes[0].prefix: is "/", which covers every key`},
		"no prefixes":  {map[string]any{"prefixes": []any{}}, "parameter prefixes: is an empty list"},
		"txn ops":      {map[string]any{"max_txn_ops": 0}, "parameter max_txn_ops: must be at least 1"},
	} {
		t.Run(name, func(t *testing.T) {
			res := runTTLLeases(t, withArgs(c.Args(), tc.extra), ansibletest.Opts{})
			if !res.Failed || res.Changed || !strings.Contains(res.Msg, tc.want) {
				t.Fatalf("msg %q, want %q", res.Msg, tc.want)
			}
		})
	}
	if l, _ := c.Client(t).Leases(context.Background()); len(l.Leases) != 0 {
		t.Fatalf("bad input granted %d leases", len(l.Leases))
	}
}
