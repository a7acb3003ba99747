package clusterinfo

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/etcdops/etcd/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkGather measures one full Gather (statuses, health, members, alarms, v2 root, key counts
// of two prefixes) on a 3-member TLS cluster holding BENCH_FACTS_KEYS v3 keys (default 20000): the
// cost of the migration's preflight. Count-only ranges still walk the index, so it grows with keys.
func BenchmarkGather(b *testing.B) {
	n := 20000
	if s := os.Getenv("BENCH_FACTS_KEYS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	c := etcdtest.NewCluster(b, 3)
	cli := c.Client(b)
	ctx := context.Background()
	for i := 0; i < n; i += 128 {
		var ops []clientv3.Op
		for j := i; j < min(i+128, n); j++ {
			prefix := "/kubernetes.io/"
			if j%4 == 0 {
				prefix = "/openshift.io/"
			}
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sobj/%08d", prefix, j), "v"))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	o := c.ConnOptions()
	spec := Spec{V2: true, V3Prefixes: []string{"/kubernetes.io/", "/openshift.io/"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		info, err := Gather(ctx, &o, spec)
		if err != nil {
			b.Fatal(err)
		}
		if info.V3.TotalKeys != int64(n) {
			b.Fatalf("counted %d keys, want %d", info.V3.TotalKeys, n)
		}
	}
	b.ReportMetric(float64(n), "keys")
}
