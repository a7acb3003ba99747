package e2e

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// A playbook run over SSH on the three hosts reads the members over TLS with the collection's module,
// stops and starts a real unit, and writes to etcd; the test checks each effect from outside.
func TestPlaybookOverSSHChangesRealState(t *testing.T) {
	env := lab.EnvMap(ansibletest.Install(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	api, controllers := lab.MasterServices[0], lab.MasterServices[1]
	run := func(state string) *lab.Result {
		t.Helper()
		res, err := shared.Playbook(ctx, lab.Run{Playbook: "testdata/smoke.yml", Env: env,
			ExtraVars: map[string]any{"api_state": state}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil || len(res.Stats) != 3 {
			t.Fatalf("playbook (api_state=%s): %v, stats %v\n%s", state, res.Err, res.Stats, res.Failures())
		}
		for host, s := range res.Stats {
			if s.Failures+s.Unreachable > 0 {
				t.Fatalf("%s: %+v\n%s", host, s, res.Failures())
			}
		}
		return res
	}

	res := run("stopped")
	facts := res.Find("Read cluster facts")
	if len(facts) != 3 {
		t.Fatalf("cluster facts from %d hosts, want 3", len(facts))
	}
	for _, f := range facts {
		var info struct {
			Members []struct {
				Name       string   `json:"name"`
				ClientURLs []string `json:"client_urls"`
			} `json:"members"`
			AllHealthy bool `json:"all_healthy"`
		}
		if err := f.Decode(&info); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range info.Members {
			names = append(names, m.Name)
		}
		if strings.Join(sorted(names), ",") != "etcd1,etcd2,etcd3" || !info.AllHealthy {
			t.Errorf("%s saw members %v (healthy %v), want etcd1..3 healthy", f.Host, names, info.AllHealthy)
		}
	}
	cli := shared.V3Client(t)
	for _, h := range shared.Members() {
		if shared.UnitActive(h, api) {
			t.Errorf("%s: %s still active after the playbook stopped it", h.Name, api)
		}
		if !shared.UnitActive(h, controllers) {
			t.Errorf("%s: %s stopped, but the playbook did not touch it", h.Name, controllers)
		}
		resp, err := cli.Get(ctx, "/e2e/ran-on/"+h.Name)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != h.Addr {
			t.Errorf("/e2e/ran-on/%s = %v (err %v), want %s", h.Name, resp, err, h.Addr)
		}
	}

	res = run("started")
	for _, r := range res.Find("Set the master API unit state") {
		if !r.Changed() {
			t.Errorf("%s: starting the stopped %s reported no change", r.Host, api)
		}
	}
	for _, h := range shared.Members() {
		if !shared.UnitActive(h, api) {
			t.Errorf("%s: %s not active after the playbook started it", h.Name, api)
		}
	}
	res = run("started")
	for _, r := range res.Find("Set the master API unit state") {
		if r.Changed() {
			t.Errorf("%s: second start of a running %s reported a change", r.Host, api)
		}
	}
}

// The seeded v2 data is in every member as the manifest says: values, TTLs, TTL and empty directories.
func TestSeededV2DataMatchesManifest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if manifest.Count.Keys != seedKeys || manifest.Count.TTLKeys == 0 || manifest.Count.Hidden == 0 || manifest.Count.EmptyDirs == 0 {
		t.Fatalf("manifest counts %+v: want %d keys with TTL keys, hidden keys and empty dirs", manifest.Count, seedKeys)
	}
	for _, h := range shared.Members() {
		o := shared.Conn(h)
		c2, err := o.V2()
		if err != nil {
			t.Fatal(err)
		}
		kapi := clientv2.NewKeysAPI(c2)
		rep, err := dataset.VerifyV2(ctx, kapi, manifest)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK(false) || rep.Checked != seedKeys {
			t.Errorf("%s: %s", h.Name, rep)
		}
		for _, e := range manifest.Entries {
			if e.TTL == 0 {
				continue
			}
			resp, err := kapi.Get(ctx, e.Key, nil)
			if err != nil || resp.Node.TTL <= 0 {
				t.Fatalf("%s: %s should carry a TTL: %v %+v", h.Name, e.Key, err, resp)
			}
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
