// Package bench measures etcd_v2_copy and etcd_ttl_leases against the algorithms they replace and
// against the server's write ceiling, all on the same server in one run, and prints the ratios.
// Run it with `make bench` (Debian's etcd 3.4 by default; BENCH_KEYS sets the dataset size).
package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/etcdtest"
	"github.com/etcdops/etcd/pkg/leases"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2data"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const root = "/kubernetes.io"

type kv struct{ key, value string }

// dataset: n keys of ≈4.6 KiB (the lab notes' write-ceiling figures use the same size) in
// namespaces of 60, like pods or events of an OpenShift 3 cluster.
func dataset(n int) []kv {
	pad := strings.Repeat("x", 4600)
	out := make([]kv, n)
	for i := range out {
		out[i] = kv{fmt.Sprintf("%s/pods/ns-%03d/pod-%05d", root, i/60, i), fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad)}
	}
	return out
}

func BenchmarkV2Data(b *testing.B) {
	n := 6000
	if s := os.Getenv("BENCH_KEYS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	data := dataset(n)
	srv, v2dst := etcdtest.NewCluster(b, 1), etcdtest.NewCluster(b, 1)
	kapi, dkapi := keysAPI(b, srv), keysAPI(b, v2dst)
	cli := srv.Client(b)
	ctx := context.Background()
	parallelV2(b, kapi, data) // the source
	bytes := 0
	for _, d := range data {
		bytes += len(d.key) + len(d.value)
	}
	clearV3 := func() {
		if _, err := cli.Delete(ctx, root, clientv3.WithPrefix()); err != nil {
			b.Fatal(err)
		}
	}
	clearV2 := func() {
		if _, err := dkapi.Delete(ctx, root, &clientv2.DeleteOptions{Dir: true, Recursive: true}); err != nil && !clientv2.IsKeyNotFound(err) {
			b.Fatal(err)
		}
	}
	copySpec := func(target string) v2data.Spec {
		dst := srv.ConnOptions()
		if target == "v2" {
			dst = v2dst.ConnOptions()
		}
		return v2data.Spec{Source: srv.ConnOptions(), Dest: dst, TargetAPI: target, Concurrency: 8, InvalidUTF8: "fail",
			MaxTxnOps: 128, MaxKeysPerLease: 1000, LeaseGranularity: 10 * time.Second, RequireEmptyDestination: true}
	}
	runCopy := func(s v2data.Spec) {
		res, err := v2data.Copy(ctx, &module.Task{}, s)
		if err != nil || res.Written.Keys != int64(n) {
			b.Fatalf("copy: %v %+v", err, res)
		}
	}
	rate := func(f func()) float64 {
		start := time.Now()
		f()
		return float64(n) / time.Since(start).Seconds()
	}

	for i := 0; i < b.N; i++ {
		// v2 → v3 copy (the online migration).
		base := rate(func() { hardMigrateV3(b, kapi, cli) })
		clearV3()
		ceiling := rate(func() { batchedV3(b, cli, data) })
		clearV3()
		ours := rate(func() { runCopy(copySpec("v3")) })
		clearV3()
		s := copySpec("v3")
		s.Verify = true
		oursVerified := rate(func() { runCopy(s) })

		// Lease attach on the v3 keys the last copy wrote.
		attachBase := rate(func() { etcdTTL(b, cli) })
		batchedV3(b, cli, data) // a put without a lease drops it again
		var attached int64
		attachOurs := rate(func() {
			res, err := leases.Attach(ctx, &module.Task{}, cli, leases.Spec{Prefixes: []leases.Prefix{{Prefix: root, TTL: time.Hour}},
				MaxKeysPerLease: 1000, MaxTxnOps: 128, PageSize: 1000, Concurrency: 8, Timeout: 30 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			attached = res.Attached
		})
		if attached != int64(n) {
			b.Fatalf("attached %d of %d", attached, n)
		}

		// v2 → v2 copy (the clean-up runbook), for the record: v2 has no batching.
		v2base := rate(func() { hardMigrateV2(b, kapi, dkapi) })
		clearV2()
		v2ceiling := rate(func() { parallelV2(b, dkapi, data) })
		clearV2()
		v2ours := rate(func() { runCopy(copySpec("v2")) })
		clearV2()

		fmt.Printf("\n%d keys, %.1f MiB, one member (%s), v2 → v3 unless noted; keys/s:\n", n, float64(bytes)/(1<<20), server())
		row := func(name string, r float64, extra string) { fmt.Printf("  %-72s %8.0f  %s\n", name, r, extra) }
		row("copy baseline: etcd-hard-migrate (one response, one put per node, sequential)", base, "")
		row("write ceiling: 128 puts per txn, 8 writers, nothing read", ceiling, "")
		row("etcd_v2_copy (no verification)", ours, fmt.Sprintf("%.1f× baseline (target ≥ 20×), %.0f %% of ceiling (target ≥ 70 %%)", ours/base, 100*ours/ceiling))
		row("etcd_v2_copy with verification (re-reads the destination)", oursVerified, fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", oursVerified/base, 100*oursVerified/ceiling))
		row("lease attach baseline: oc adm migrate etcd-ttl (one txn per key, sequential)", attachBase, "")
		row("etcd_ttl_leases", attachOurs, fmt.Sprintf("%.1f× baseline (target ≥ 20×)", attachOurs/attachBase))
		row("v2 → v2 baseline: etcd-hard-migrate (one set per node, sequential)", v2base, "")
		row("v2 → v2 ceiling: 8 parallel setters, nothing read", v2ceiling, "")
		row("etcd_v2_copy target_api: v2 (no verification)", v2ours, fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", v2ours/v2base, 100*v2ours/v2ceiling))
		b.ReportMetric(ours/base, "copy_x_baseline")
		b.ReportMetric(100*ours/ceiling, "copy_%_ceiling")
		b.ReportMetric(attachOurs/attachBase, "attach_x_baseline")
		b.ReportMetric(v2ours/v2base, "v2copy_x_baseline")
		b.ReportMetric(100*v2ours/v2ceiling, "v2copy_%_ceiling")
	}
}

func server() string {
	if bin := etcdtest.Binary(); bin != "" {
		return bin
	}
	return "embedded etcd 3.5"
}

func keysAPI(b *testing.B, c *etcdtest.Cluster) clientv2.KeysAPI {
	o := c.ConnOptions()
	cli, err := o.V2()
	if err != nil {
		b.Fatal(err)
	}
	return clientv2.NewKeysAPI(cli)
}

// nodes lists a recursive v2 response depth first, directories before their children.
func nodes(n *clientv2.Node, visit func(*clientv2.Node)) {
	for _, c := range n.Nodes {
		visit(c)
		nodes(c, visit)
	}
}

// hardMigrateV3 is etcd-hard-migrate's algorithm aimed at v3: the whole keyspace in one recursive
// response, then one write per leaf, in order.
func hardMigrateV3(b *testing.B, kapi clientv2.KeysAPI, cli *clientv3.Client) {
	resp, err := kapi.Get(context.Background(), "/", &clientv2.GetOptions{Recursive: true, Sort: true})
	if err != nil {
		b.Fatal(err)
	}
	nodes(resp.Node, func(n *clientv2.Node) {
		if !n.Dir {
			if _, err := cli.Put(context.Background(), n.Key, n.Value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// hardMigrateV2 is etcd-hard-migrate itself: one recursive response, one set per node.
func hardMigrateV2(b *testing.B, src, dst clientv2.KeysAPI) {
	resp, err := src.Get(context.Background(), "/", &clientv2.GetOptions{Recursive: true, Sort: true})
	if err != nil {
		b.Fatal(err)
	}
	nodes(resp.Node, func(n *clientv2.Node) {
		if _, err := dst.Set(context.Background(), n.Key, n.Value, &clientv2.SetOptions{Dir: n.Dir}); err != nil {
			b.Fatal(err)
		}
	})
}

// batchedV3 saturates the server: 128 puts per txn from 8 writers, values already in memory.
func batchedV3(b *testing.B, cli *clientv3.Client, data []kv) {
	parallel(b, data, 128, func(batch []kv) error {
		ops := make([]clientv3.Op, len(batch))
		for i, d := range batch {
			ops[i] = clientv3.OpPut(d.key, d.value)
		}
		_, err := cli.Txn(context.Background()).Then(ops...).Commit()
		return err
	})
}

// parallelV2 is the v2 ceiling: 8 setters, one request per key.
func parallelV2(b *testing.B, kapi clientv2.KeysAPI, data []kv) {
	parallel(b, data, 1, func(batch []kv) error {
		_, err := kapi.Set(context.Background(), batch[0].key, batch[0].value, nil)
		return err
	})
}

func parallel(b *testing.B, data []kv, size int, write func([]kv) error) {
	batches := make(chan []kv)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				if err := write(batch); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < len(data); i += size {
		batches <- data[i:min(i+size, len(data))]
	}
	close(batches)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// etcdTTL is `oc adm migrate etcd-ttl`'s algorithm: read the prefix, grant one lease, then one
// guarded txn per key, in order, re-leasing keys that already have one.
func etcdTTL(b *testing.B, cli *clientv3.Client) {
	ctx := context.Background()
	resp, err := cli.Get(ctx, root, clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		b.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpPut(string(kv.Key), string(kv.Value), clientv3.WithLease(lease.ID))).Commit()
		if err != nil {
			b.Fatal(err)
		}
	}
}
