// Package bench measures etcd_v2_copy and etcd_ttl_leases against the algorithms they replace and
// against the server's write ceiling, all on the same server in one run, and prints the ratios.
// Run it with `make bench` (Debian's etcd 3.4 by default; BENCH_KEYS sets the dataset size).
package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
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
	n := 20000
	if s := os.Getenv("BENCH_KEYS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	data := dataset(n)
	// The source holds the v2 dataset and is only read; every contender writes to the same
	// destination server (v3) or to the same v2 destination. A separate source keeps its WAL — read
	// for hidden-key discovery — the size of the dataset, as on a real member, instead of growing
	// with every measurement's writes.
	// The source snapshots its store every 5000 writes, so that, as on any long-lived member, most of
	// it is in a v2 snapshot and the rest in the WAL (hidden-key discovery reads both).
	src := etcdtest.NewCluster(b, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "5000"}})
	srv, v2dst := etcdtest.NewCluster(b, 1), etcdtest.NewCluster(b, 1)
	kapi, dkapi := keysAPI(b, src), keysAPI(b, v2dst)
	cli := srv.Client(b)
	ctx := context.Background()
	parallelV2(b, kapi, data)
	bytes := 0
	for _, d := range data {
		bytes += len(d.key) + len(d.value)
	}
	// Every contender writes the dataset again: compact and defragment before each, or the history
	// outgrows the backend quota (2 GiB) within a few rounds, and later contenders write into a larger,
	// fragmented backend than earlier ones.
	clearV3 := func() {
		resp, err := cli.Delete(ctx, root, clientv3.WithPrefix())
		if err == nil {
			_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
		}
		if err == nil {
			_, err = cli.Defragment(ctx, cli.Endpoints()[0])
		}
		if err != nil {
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
		return v2data.Spec{Source: src.ConnOptions(), Dest: dst, TargetAPI: target, Concurrency: 8, InvalidUTF8: "fail",
			SourceDataDir: src.Members[0].DataDir, // hidden-key discovery reads the WAL: part of the job
			MaxTxnOps:     128, MaxKeysPerLease: 1000, LeaseGranularity: 10 * time.Second, RequireEmptyDestination: true}
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

	// Four engineers share this machine's two cores: each round measures every contender close
	// together in time, and the ratios are medians over the rounds.
	rounds := 3
	if s := os.Getenv("BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	names := []string{
		"copy baseline: etcd-hard-migrate (one response, one put per node, sequential)",
		"write ceiling: 128 puts per txn, 8 writers, nothing read",
		"etcd_v2_copy (no verification)",
		"etcd_v2_copy with verification (re-reads the destination)",
		"lease attach baseline: oc adm migrate etcd-ttl (one txn per key, sequential)",
		"etcd_ttl_leases",
		"v2 → v2 baseline: etcd-hard-migrate (one set per node, sequential)",
		"v2 → v2 ceiling: 8 parallel setters, nothing read",
		"etcd_v2_copy target_api: v2 (no verification)",
		"read only: etcd_v2_copy in check mode (walks the source, writes nothing)",
	}
	rates := make([][]float64, len(names))
	for i := 0; i < b.N*rounds; i++ {
		r := make([]float64, len(names))
		// v2 → v3 copy (the online migration).
		r[0] = rate(func() { hardMigrateV3(b, kapi, cli) })
		clearV3()
		r[1] = rate(func() { batchedV3(b, cli, data) })
		clearV3()
		r[2] = rate(func() { runCopy(copySpec("v3")) })
		clearV3()
		s := copySpec("v3")
		s.Verify = true
		r[3] = rate(func() { runCopy(s) })

		// Lease attach, each contender on the same freshly written, lease-less keys.
		clearV3()
		batchedV3(b, cli, data)
		r[4] = rate(func() { etcdTTL(b, cli) })
		clearV3()
		batchedV3(b, cli, data)
		r[5] = rate(func() {
			res, err := leases.Attach(ctx, &module.Task{}, cli, leases.Spec{Prefixes: []leases.Prefix{{Prefix: root, TTL: time.Hour}},
				MaxKeysPerLease: 1000, MaxTxnOps: 128, PageSize: 1000, Concurrency: 8, Timeout: 30 * time.Second})
			if err != nil || res.Attached != int64(n) {
				b.Fatalf("attach: %v %+v", err, res)
			}
		})
		clearV3()

		// v2 → v2 copy (the clean-up runbook), for the record: v2 has no batching.
		r[6] = rate(func() { hardMigrateV2(b, kapi, dkapi) })
		clearV2()
		r[7] = rate(func() { parallelV2(b, dkapi, data) })
		clearV2()
		r[8] = rate(func() { runCopy(copySpec("v2")) })
		clearV2()
		r[9] = rate(func() {
			if res, err := v2data.Copy(ctx, &module.Task{CheckMode: true}, copySpec("v3")); err != nil || res.Source.Keys != int64(n) {
				b.Fatalf("check mode: %v %+v", err, res)
			}
		})
		for j := range r {
			rates[j] = append(rates[j], r[j])
		}

		fmt.Printf("round %d: copy %.1f× baseline, %.0f %% of ceiling; attach %.1f× baseline; v2 copy %.1f× baseline, %.0f %% of ceiling\n",
			i+1, r[2]/r[0], 100*r[2]/r[1], r[5]/r[4], r[8]/r[6], 100*r[8]/r[7])
	}

	fmt.Printf("\n%d keys, %.1f MiB, one-member servers (%s), v2 → v3 unless noted; keys/s, median of %d rounds:\n",
		n, float64(bytes)/(1<<20), server(), len(rates[0]))
	ratio := func(a, c int) float64 { return median(rates[a], rates[c], func(x, y float64) float64 { return x / y }) }
	notes := map[int]string{
		2: fmt.Sprintf("%.1f× baseline (target ≥ 20×), %.0f %% of ceiling (target ≥ 70 %%)", ratio(2, 0), 100*ratio(2, 1)),
		3: fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", ratio(3, 0), 100*ratio(3, 1)),
		1: fmt.Sprintf("%.1f× baseline: the most any copy can reach here", ratio(1, 0)),
		5: fmt.Sprintf("%.1f× baseline (target ≥ 20×), %.0f %% of the write ceiling", ratio(5, 4), 100*ratio(5, 1)),
		8: fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", ratio(8, 6), 100*ratio(8, 7)),
		9: fmt.Sprintf("%.0f %% of the write ceiling: reading through the v2 API (JSON, one request per directory) "+
			"competes with the writes for the same cores", 100*ratio(9, 1)),
	}
	for j, name := range names {
		fmt.Printf("  %-80s %8.0f  %s\n", name, median(rates[j], rates[j], func(x, _ float64) float64 { return x }), notes[j])
	}
	b.ReportMetric(ratio(2, 0), "copy_x_baseline")
	b.ReportMetric(100*ratio(2, 1), "copy_%_ceiling")
	b.ReportMetric(ratio(5, 4), "attach_x_baseline")
	b.ReportMetric(ratio(8, 6), "v2copy_x_baseline")
	b.ReportMetric(100*ratio(8, 7), "v2copy_%_ceiling")
}

// median of f(a[i], b[i]) over the rounds: ratios are taken within a round, where the machine's
// other load hit both contenders alike.
func median(a, b []float64, f func(x, y float64) float64) float64 {
	v := make([]float64, len(a))
	for i := range a {
		v[i] = f(a[i], b[i])
	}
	sort.Float64s(v)
	return v[len(v)/2]
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
// guarded txn per key, in order, re-leasing keys that already have one. (The tool reads the prefix
// in one response, which fails above the client's 64 MiB message limit; this pages the read, whose
// cost is small beside the per-key transactions.)
func etcdTTL(b *testing.B, cli *clientv3.Client) {
	ctx := context.Background()
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		b.Fatal(err)
	}
	end := clientv3.GetPrefixRangeEnd(root)
	for start := root; ; {
		resp, err := cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(1000))
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
		if !resp.More {
			return
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
