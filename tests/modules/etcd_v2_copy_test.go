package modules

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/internal/v2seed"
	"github.com/etcdops/etcd/pkg/v2data"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type v2CopyResult struct {
	v2data.Result
	ansibletest.Flags
}

func runV2Copy(t *testing.T, args map[string]any, o ansibletest.Opts) v2CopyResult {
	return ansibletest.ModuleAs[v2CopyResult](t, "etcd_v2_copy", args, o)
}

// Through real Ansible, source and destination TLS clusters: check mode first (counts, writes
// nothing), then the copy (verified, hidden and TTL keys included), then again (nothing changes).
// The source snapshots often, so the copy reads its v2 snapshot and the API for the rest.
func TestV2CopyModule(t *testing.T) {
	src := etcdtest.NewCluster(t, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "2"}})
	dst := etcdtest.NewCluster(t, 1)
	ctx := context.Background()
	o := src.ConnOptions()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	kapi := clientv2.NewKeysAPI(v2)
	for k, v := range map[string]string{"/kubernetes.io/pods/ns/p1": "pod", "/openshift.io/oauth/accesstokens/_tok": "hidden",
		"/openshift.io/oauth/accesstokens/tok": "visible"} {
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	kapi.Set(ctx, "/kubernetes.io/events/ns/e1", "event", &clientv2.SetOptions{TTL: time.Hour})
	kapi.Set(ctx, "/kubernetes.io/empty", "", &clientv2.SetOptions{Dir: true})
	args := map[string]any{"source": src.Args(), "destination": dst.Args(), "target_api": "v3",
		"source_data_dir": src.Members[0].DataDir, "prefixes": []any{"/kubernetes.io", "/openshift.io"}}
	cli := dst.Client(t)

	res := runV2Copy(t, args, ansibletest.Opts{Check: true})
	if res.Failed || !res.Changed || res.Written.Keys != 4 || res.Source.HiddenKeys != 1 {
		t.Fatalf("check mode: %s %+v", res.Msg, res.Result)
	}
	if r, _ := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); r.Count != 0 {
		t.Fatalf("check mode wrote %d keys", r.Count)
	}

	res = runV2Copy(t, args, ansibletest.Opts{})
	if res.Failed || !res.Changed || !res.Verified || res.Written.Keys != 4 || res.Written.LeasesGranted != 1 ||
		res.SourceRead != "snapshot" ||
		res.Destination.Digest != res.Source.Digest || res.Destination.TTLKeys != 1 {
		t.Fatalf("copy: %s %+v", res.Msg, res.Result)
	}
	if r, _ := cli.Get(ctx, "/openshift.io/oauth/accesstokens/_tok"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "hidden" {
		t.Fatalf("hidden key not copied: %+v", r.Kvs)
	}

	res = runV2Copy(t, args, ansibletest.Opts{})
	if res.Failed || res.Changed || res.Written.Identical != 4 || !res.Verified {
		t.Fatalf("re-run: %s %+v", res.Msg, res.Result)
	}

	verify := withArgs(args, map[string]any{"verify_only": true, "prefixes": "/kubernetes.io"})
	cli.Put(ctx, "/kubernetes.io/pods/ns/p1", "drifted")
	cli.Put(ctx, "/kubernetes.io/v3only/k", "written to v3 only")
	// Issue 19: the failure names the destination keys that differ, a v3-only one included.
	if res = runV2Copy(t, verify, ansibletest.Opts{}); !res.Failed || res.Changed || !strings.Contains(res.Msg, "verification failed") ||
		!strings.Contains(res.Msg, "2 destination nodes are not in the source as they are") ||
		!strings.Contains(res.Msg, "/kubernetes.io/pods/ns/p1, /kubernetes.io/v3only/k") {
		t.Fatalf("verify_only: %s %+v", res.Msg, res.Result)
	}

	t.Run("without source_data_dir it warns about hidden keys", func(t *testing.T) {
		a := withArgs(args, map[string]any{"source_data_dir": nil, "verify_only": true, "prefixes": "/openshift.io"})
		res := runV2Copy(t, a, ansibletest.Opts{})
		if res.Failed || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "source_data_dir") {
			t.Fatalf("%s %+v %v", res.Msg, res.Result, res.Warnings)
		}
	})
}

// Bad input fails before anything is read or written, names the parameter, and never echoes secrets.
func TestV2CopyModuleBadInput(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	base := map[string]any{"source": c.Args(), "destination": c.Args(), "target_api": "v3"}
	secret := withArgs(c.Args(), map[string]any{"password": "pa55-w0rd-secret", "user": "root"})
	for name, tc := range map[string]struct {
		args map[string]any
		want string
	}{
		"v2 copy onto itself": {withArgs(base, map[string]any{"target_api": "v2"}), "parameter destination.endpoints: is the source itself"},
		"relative prefix":     {withArgs(base, map[string]any{"prefixes": "kubernetes.io"}), "parameter prefixes: v2 paths start with '/'"},
		"bad target":          {withArgs(base, map[string]any{"target_api": "v4"}), "parameter target_api: value \"v4\" is not one of: v2,v3"},
		"no destination":      {map[string]any{"source": c.Args(), "target_api": "v3"}, "parameter destination: is required"},
		"bad source cert":     {withArgs(base, map[string]any{"source": withArgs(secret, map[string]any{"ca_cert": "/nonexistent.crt"})}), "parameter source.ca_cert: cannot read /nonexistent.crt"},
		"zero concurrency":    {withArgs(base, map[string]any{"concurrency": 0}), "parameter concurrency: must be at least 1"},
	} {
		t.Run(name, func(t *testing.T) {
			raw := ansibletest.Module(t, "etcd_v2_copy", tc.args, ansibletest.Opts{})
			if !raw.Failed() || raw.Changed() || !strings.Contains(raw.Msg(), tc.want) {
				t.Fatalf("msg %q, want %q", raw.Msg(), tc.want)
			}
			if b, _ := json.Marshal(raw); strings.Contains(string(b), "pa55-w0rd-secret") {
				t.Fatalf("secret echoed: %s", b)
			}
		})
	}
}

// Issue 19: errors the servers give name the option to fix - a source without the v2 API names
// source.endpoints, a destination that refuses a transaction of max_txn_ops puts names max_txn_ops -
// and the failed copy leaves the destination without the keys.
func TestV2CopyModuleServerErrorsNameTheOption(t *testing.T) {
	noV2 := etcdtest.NewCluster(t, 1, etcdtest.Options{DisableV2: true})
	src := etcdtest.NewCluster(t, 1)
	dst := etcdtest.NewCluster(t, 1)
	kapi := v2seed.KeysAPI(t, src)
	for i := 0; i < 200; i++ {
		if _, err := kapi.Set(context.Background(), fmt.Sprintf("/kubernetes.io/pods/p%03d", i), "v", nil); err != nil {
			t.Fatal(err)
		}
	}
	for want, args := range map[string]map[string]any{
		"source.endpoints serve no v2 API": {"source": noV2.Args(), "destination": dst.Args(), "target_api": "v3"},
		"parameter max_txn_ops":            {"source": src.Args(), "destination": dst.Args(), "target_api": "v3", "max_txn_ops": 200},
	} {
		raw := ansibletest.Module(t, "etcd_v2_copy", args, ansibletest.Opts{})
		if !raw.Failed() || !strings.Contains(raw.Msg(), want) {
			t.Errorf("want %q: %v", want, raw.Msg())
		}
	}
	if got, err := dst.Client(t).Get(context.Background(), "/kubernetes.io/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || got.Count != 0 {
		t.Fatalf("destination keys after the failures: %v %v", got, err)
	}
}
