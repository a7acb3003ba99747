// Package bench measures etcd_v2_copy and etcd_ttl_leases against the algorithms they replace and
// against the server's write ceiling, all on the same server in one run, and prints the ratios.
// Run it with `make bench` (Debian's etcd 3.4 by default; BENCH_KEYS sets the dataset size).
package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/etcdops/etcd/internal/etcdtest"
	"github.com/etcdops/etcd/pkg/leases"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2data"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
	// The source holds the v2 dataset and is only read. It snapshots its store every 5000 writes,
	// so that, as on any long-lived member, most of it is in a v2 snapshot and the rest in the WAL
	// (hidden-key discovery reads both).
	src := etcdtest.NewCluster(b, 1, etcdtest.Options{Extra: map[string]string{"snapshot-count": "5000"}})
	kapi := keysAPI(b, src)
	ctx := context.Background()
	parallelV2(b, kapi, data)
	// Then it takes no more snapshots: one costs it a second of CPU, which would land on whichever
	// contender's quorum reads pushed it past the next 5000 entries.
	m := src.Members[0]
	src.Stop(m)
	m.Extra["snapshot-count"] = "100000000"
	if err := src.Start(m); err != nil {
		b.Fatal(err)
	}
	src.WaitReady(b)
	kapi = keysAPI(b, src)
	size := 0
	for _, d := range data {
		size += len(d.key) + len(d.value)
	}
	copySpec := func(dst *etcdtest.Cluster, target string) v2data.Spec {
		return v2data.Spec{Source: src.ConnOptions(), Dest: dst.ConnOptions(), TargetAPI: target, Concurrency: 8, InvalidUTF8: "fail",
			SourceDataDir: src.Members[0].DataDir, // hidden-key discovery reads the WAL: part of the job
			MaxTxnOps:     128, MaxKeysPerLease: 1000, LeaseGranularity: 10 * time.Second, RequireEmptyDestination: true}
	}
	readFrom := map[string]bool{} // where the copies read the source
	runCopy := func(s v2data.Spec, check bool) {
		res, err := v2data.Copy(ctx, &module.Task{CheckMode: check}, s)
		if err != nil || res.Source.Keys != int64(n) || res.Written.Keys != int64(n) {
			b.Fatalf("copy: %v %+v", err, res)
		}
		readFrom[s.TargetAPI+" from "+res.SourceRead+" "+res.SourceReadNote] = true
	}
	v3 := func(dst *etcdtest.Cluster) *clientv3.Client { return dst.Client(b) }
	contenders := []struct {
		name string
		v2   bool                        // the destination serves v2 (else v3)
		prep func(dst *etcdtest.Cluster) // untimed
		run  func(dst *etcdtest.Cluster)
	}{
		// v2 → v3 copy (the online migration).
		{name: "copy baseline: etcd-hard-migrate (one response, one put per node, sequential)",
			run: func(dst *etcdtest.Cluster) { hardMigrateV3(b, kapi, v3(dst)) }},
		{name: "write ceiling: 128 puts per txn, 8 writers, nothing read",
			run: func(dst *etcdtest.Cluster) { batchedV3(b, v3(dst), data) }},
		{name: "etcd_v2_copy (no verification)",
			run: func(dst *etcdtest.Cluster) { runCopy(copySpec(dst, "v3"), false) }},
		{name: "etcd_v2_copy with verification (re-reads the destination)", run: func(dst *etcdtest.Cluster) {
			s := copySpec(dst, "v3")
			s.Verify = true
			runCopy(s, false)
		}},
		// Lease attach, each contender on the same freshly written, lease-less keys.
		{name: "lease attach baseline: oc adm migrate etcd-ttl (one txn per key, sequential)",
			prep: func(dst *etcdtest.Cluster) { batchedV3(b, v3(dst), data) },
			run:  func(dst *etcdtest.Cluster) { etcdTTL(b, v3(dst)) }},
		{name: "etcd_ttl_leases",
			prep: func(dst *etcdtest.Cluster) { batchedV3(b, v3(dst), data) },
			run: func(dst *etcdtest.Cluster) {
				res, err := leases.Attach(ctx, &module.Task{}, v3(dst), leases.Spec{Prefixes: []leases.Prefix{{Prefix: root, TTL: time.Hour}},
					MaxKeysPerLease: 1000, MaxTxnOps: 128, PageSize: 1000, Concurrency: 8, Timeout: 30 * time.Second})
				if err != nil || res.Attached != int64(n) {
					b.Fatalf("attach: %v %+v", err, res)
				}
			}},
		// v2 → v2 copy (the clean-up runbook), for the record: v2 has no batching.
		{name: "v2 → v2 baseline: etcd-hard-migrate (one set per node, sequential)", v2: true,
			run: func(dst *etcdtest.Cluster) { hardMigrateV2(b, kapi, keysAPI(b, dst)) }},
		{name: "v2 → v2 ceiling: 8 parallel setters, nothing read", v2: true,
			run: func(dst *etcdtest.Cluster) { parallelV2(b, keysAPI(b, dst), data) }},
		{name: "etcd_v2_copy target_api: v2 (no verification)", v2: true,
			run: func(dst *etcdtest.Cluster) { runCopy(copySpec(dst, "v2"), false) }},
		{name: "read only: etcd_v2_copy in check mode (walks the source, writes nothing)",
			run: func(dst *etcdtest.Cluster) { runCopy(copySpec(dst, "v3"), true) }},
	}
	const (
		baseline, ceiling, cp, cpVerified, attachBaseline, attach, v2Baseline, v2Ceiling, v2Copy, readOnly = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
	)

	// Every contender writes into a server of its own, warm and empty, like the long-running
	// cluster an online migration writes into: started, written once with the dataset, then
	// cleared (deleted, compacted, defragmented). A server shared by the contenders keeps their
	// writes in its in-memory raft log (until a snapshot 100k entries later), so each later one pays
	// more; a cold one pays for growing its heap. Four engineers share this machine's two cores:
	// each round measures every contender close together in time, and the ratios are medians over
	// the rounds.
	warm := func(dst *etcdtest.Cluster, v2 bool) {
		if v2 {
			kapi := keysAPI(b, dst)
			parallelV2(b, kapi, data)
			if _, err := kapi.Delete(ctx, root, &clientv2.DeleteOptions{Dir: true, Recursive: true}); err != nil {
				b.Fatal(err)
			}
		}
		cli := v3(dst)
		batchedV3(b, cli, data)
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
	rounds := 5
	if s := os.Getenv("BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	samples := make([][]sample, len(contenders))
	for i := 0; i < b.N*rounds; i++ {
		for j, c := range contenders {
			dst := etcdtest.NewCluster(b, 1, etcdtest.Options{DisableV2: !c.v2})
			warm(dst, c.v2)
			if c.prep != nil {
				c.prep(dst)
			}
			quiet(src, dst)
			samples[j] = append(samples[j], measure(n, src, dst, func() { c.run(dst) }))
			dst.Close()
			// Its data goes at once: 50 servers' worth of written-back pages would load the disk
			// and the kernel under later contenders (the destination's CPU for the same copy
			// drifted from 0.6 s to over 1 s across the rounds).
			for _, m := range dst.Members {
				os.RemoveAll(m.DataDir)
			}
		}
		r := func(j int) float64 { return samples[j][i].rate }
		fmt.Printf("round %d: copy %.1f× baseline, %.0f %% of ceiling; attach %.1f× baseline; v2 copy %.1f× baseline, %.0f %% of ceiling\n",
			i+1, r(cp)/r(baseline), 100*r(cp)/r(ceiling), r(attach)/r(attachBaseline), r(v2Copy)/r(v2Baseline), 100*r(v2Copy)/r(v2Ceiling))
	}

	fmt.Printf("\n%d keys, %.1f MiB, one-member servers (%s), v2 → v3 unless noted; keys/s and CPU seconds "+
		"(this process / source / destination), median of %d rounds:\n", n, float64(size)/(1<<20), server(), rounds)
	ratio := func(a, c int) float64 {
		return median(samples[a], samples[c], func(x, y sample) float64 { return x.rate / y.rate })
	}
	notes := map[int]string{
		cp:         fmt.Sprintf("%.1f× baseline (target ≥ 20×), %.0f %% of ceiling (target ≥ 70 %%)", ratio(cp, baseline), 100*ratio(cp, ceiling)),
		cpVerified: fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", ratio(cpVerified, baseline), 100*ratio(cpVerified, ceiling)),
		ceiling:    fmt.Sprintf("%.1f× baseline: the most any copy can reach here", ratio(ceiling, baseline)),
		attach: fmt.Sprintf("%.1f× baseline (target ≥ 20×), %.0f %% of the write ceiling",
			ratio(attach, attachBaseline), 100*ratio(attach, ceiling)),
		v2Copy:   fmt.Sprintf("%.1f× baseline, %.0f %% of ceiling", ratio(v2Copy, v2Baseline), 100*ratio(v2Copy, v2Ceiling)),
		readOnly: fmt.Sprintf("%.0f %% of the write ceiling", 100*ratio(readOnly, ceiling)),
	}
	for j, c := range contenders {
		mid := func(f func(sample) float64) float64 {
			return median(samples[j], samples[j], func(x, _ sample) float64 { return f(x) })
		}
		fmt.Printf("  %-80s %8.0f  %4.2f/%4.2f/%4.2f  %s\n", c.name, mid(func(s sample) float64 { return s.rate }),
			mid(func(s sample) float64 { return s.client }), mid(func(s sample) float64 { return s.source }),
			mid(func(s sample) float64 { return s.dest }), notes[j])
	}
	fmt.Printf("copies read the source: %s\n", strings.Join(slices.Sorted(maps.Keys(readFrom)), "; "))
	b.ReportMetric(ratio(cp, baseline), "copy_x_baseline")
	b.ReportMetric(100*ratio(cp, ceiling), "copy_%_ceiling")
	b.ReportMetric(ratio(attach, attachBaseline), "attach_x_baseline")
	b.ReportMetric(ratio(v2Copy, v2Baseline), "v2copy_x_baseline")
	b.ReportMetric(100*ratio(v2Copy, v2Ceiling), "v2copy_%_ceiling")
}

// sample is one contender's run: keys/s, and the CPU seconds this process, the source and the
// destination spent on it (on two shared cores, what the read costs the servers shows here).
type sample struct{ rate, client, source, dest float64 }

func measure(n int, src, dst *etcdtest.Cluster, f func()) sample {
	c0, s0, d0 := selfCPU(), procCPU(src.PID(src.Members[0])), procCPU(dst.PID(dst.Members[0]))
	start := time.Now()
	f()
	elapsed := time.Since(start).Seconds()
	return sample{rate: float64(n) / elapsed, client: selfCPU() - c0,
		source: procCPU(src.PID(src.Members[0])) - s0, dest: procCPU(dst.PID(dst.Members[0])) - d0}
}

// quiet waits until the servers are idle (a defragmentation or a compaction can go on after its
// request returns), so that a contender pays only for its own work.
func quiet(servers ...*etcdtest.Cluster) {
	for _, c := range servers {
		pid := c.PID(c.Members[0])
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			before := procCPU(pid)
			time.Sleep(300 * time.Millisecond)
			if procCPU(pid)-before < 0.02 {
				break
			}
		}
	}
}

func selfCPU() float64 {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat on Linux.
const clockTicks = 100

// procCPU is a process's user+system CPU seconds (0 for embedded servers: they count as this
// process).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	user, _ := strconv.ParseFloat(f[11], 64)
	sys, _ := strconv.ParseFloat(f[12], 64)
	return (user + sys) / clockTicks
}

// median of f(a[i], b[i]) over the rounds: ratios are taken within a round, where the machine's
// other load hit both contenders alike.
func median[T any](a, b []T, f func(x, y T) float64) float64 {
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

// batchedV3 saturates the server: 128 puts per txn from 8 writers, values already in memory and
// sent without the copy clientv3.OpPut makes of each (etcd_v2_copy does not make it either).
func batchedV3(b *testing.B, cli *clientv3.Client, data []kv) {
	kvc := pb.NewKVClient(cli.ActiveConnection())
	parallel(b, data, 128, func(batch []kv) error {
		ops := make([]*pb.RequestOp, len(batch))
		for i, d := range batch {
			ops[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: []byte(d.key), Value: unsafe.Slice(unsafe.StringData(d.value), len(d.value))}}}
		}
		_, err := kvc.Txn(context.Background(), &pb.TxnRequest{Success: ops})
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
