package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// BenchmarkCleanupOutage measures seed 000's clean-up of 20k and 100k OpenShift-shaped v2 keys, each
// on a fresh 3-host lab migrated by this collection and fallen back (masters on etcd2, v2 written
// after it, v3 keys deleted by hand): the consumer outage the playbook reports, the whole run, and the
// copy into the temporary etcd in keys/s, next to two anchors measured right after on the same lab (see
// v2Anchors). Run with `make bench-cleanup` (-benchtime 1x).
func BenchmarkCleanupOutage(b *testing.B) {
	for _, keys := range []int{20000, 100000} {
		b.Run(fmt.Sprintf("%dk", keys/1000), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l, m := migrationLab(b, keys)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				_, kapi := failedMigration(ctx, b, l, m)
				b.StartTimer()
				res := playbook(b, l, "cleanup_failed_migration.yml", nil)
				b.StopTimer()
				if res.Err != nil {
					b.Fatalf("clean-up failed: %v\n%s", res.Err, res.Failures())
				}
				outage := reportedOutage(b, summary(b, res))
				var copied struct {
					KeysPerSecond float64 `json:"keys_per_second"`
					Elapsed       float64 `json:"elapsed_seconds"`
				}
				c := res.Find("etcdops.etcd.etcd_cleanup : Copy the v2 keyspace into it (hidden keys and TTLs included), verified")
				if len(c) != 1 || c[0].Decode(&copied) != nil {
					b.Fatalf("the copy task's result: %v", c)
				}
				ceiling, sequential := v2Anchors(ctx, b, l, kapi)
				cancel()
				b.ReportMetric(outage, "outage-s")
				b.ReportMetric(res.Duration.Seconds(), "playbook-s")
				b.ReportMetric(copied.KeysPerSecond, "copy-keys/s")
				b.ReportMetric(100*copied.KeysPerSecond/ceiling, "copy-%-of-v2-ceiling")
				b.ReportMetric(copied.KeysPerSecond/sequential, "copy-x-hard-migrate")
				b.Logf("%d keys: consumer outage %.1f s, whole clean-up %.1f s, copy %.1f s at %.0f keys/s = %.0f %% of the v2 "+
					"write ceiling (%.0f keys/s), %.1f× etcd-hard-migrate's shape (%.0f keys/s)", keys, outage, res.Duration.Seconds(),
					copied.Elapsed, copied.KeysPerSecond, 100*copied.KeysPerSecond/ceiling, ceiling,
					copied.KeysPerSecond/sequential, sequential)
			}
		})
	}
}

// v2Anchors measures what the copy's keys/s is compared with, on the same lab and in the same run: a
// member like the clean-up's temporary etcd (etcd_temp_member on the first host, the host's TLS files, the
// v2 API) is written with every leaf key of the cleaned keyspace (read through kapi) twice - by 8 parallel
// setters, the v2 write ceiling, then one set at a time, etcd-hard-migrate's shape - in keys/s.
func v2Anchors(ctx context.Context, b *testing.B, l *lab.Lab, kapi clientv2.KeysAPI) (ceiling, sequential float64) {
	b.Helper()
	h := l.Members()[0]
	env := lab.EnvMap(ansibletest.Install(b))
	args := map[string]any{
		"unit": "etcdops-bench-anchor.service", "name": "bench-anchor", "data_dir": "/var/lib/etcdops-bench-anchor",
		"client_url": "https://" + h.Addr + ":3100", "peer_url": "https://" + h.Addr + ":3099",
		"cert_file": "/etc/etcd/server.crt", "key_file": "/etc/etcd/server.key", "trusted_ca_file": "/etc/etcd/ca.crt",
		"peer_cert_file": "/etc/etcd/peer.crt", "peer_key_file": "/etc/etcd/peer.key", "peer_trusted_ca_file": "/etc/etcd/ca.crt",
		"client_cert": "/etc/etcd/client.crt", "client_key": "/etc/etcd/client.key",
	}
	if r := sdTask(b, l, env, h.Name, "etcd_temp_member", args, false); r.Failed() {
		b.Fatalf("anchor member: %v", r.Values["msg"])
	}
	defer func() {
		args["state"] = "stopped"
		sdTask(b, l, env, h.Name, "etcd_temp_member", args, false)
	}()
	resp, err := kapi.Get(ctx, "/", &clientv2.GetOptions{Recursive: true})
	if err != nil {
		b.Fatal(err)
	}
	var leaves []*clientv2.Node
	var walk func(n *clientv2.Node)
	walk = func(n *clientv2.Node) {
		if !n.Dir {
			leaves = append(leaves, n)
		}
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	walk(resp.Node)
	o := l.Conn()
	o.Endpoints = []string{args["client_url"].(string)}
	c2, err := o.V2()
	if err != nil {
		b.Fatal(err)
	}
	dst := clientv2.NewKeysAPI(c2)
	set := func(prefix string, n *clientv2.Node) { // also from the setters' goroutines: Error, not Fatal
		if _, err := dst.Set(ctx, prefix+n.Key, n.Value, nil); err != nil {
			b.Error(err)
		}
	}
	rate := func(write func()) float64 {
		start := time.Now()
		write()
		return float64(len(leaves)) / time.Since(start).Seconds()
	}
	ceiling = rate(func() {
		var wg sync.WaitGroup
		next := make(chan *clientv2.Node)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range next {
					set("/ceiling", n)
				}
			}()
		}
		for _, n := range leaves {
			next <- n
		}
		close(next)
		wg.Wait()
	})
	sequential = rate(func() {
		for _, n := range leaves {
			set("/sequential", n)
		}
	})
	if b.Failed() {
		b.FailNow()
	}
	return ceiling, sequential
}

var outageFigure = regexp.MustCompile(`consumer outage ([0-9.]+) s`)

// reportedOutage reads the consumer outage from the clean-up's summary.
func reportedOutage(b *testing.B, summary string) float64 {
	b.Helper()
	m := outageFigure.FindStringSubmatch(summary)
	if m == nil {
		b.Fatalf("no consumer outage in the summary: %q", summary)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
