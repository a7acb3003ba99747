package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCleanupOutage measures seed 000's clean-up of 20k and 100k OpenShift-shaped v2 keys, each
// on a fresh 3-host lab migrated by this collection and fallen back (masters on etcd2, v2 written
// after it, v3 keys deleted by hand): the consumer outage the playbook reports, the whole run, and the
// copy into the temporary etcd in keys/s. Run with `make bench-cleanup` (-benchtime 1x).
func BenchmarkCleanupOutage(b *testing.B) {
	for _, keys := range []int{20000, 100000} {
		b.Run(fmt.Sprintf("%dk", keys/1000), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l, m := migrationLab(b, keys)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				failedMigration(ctx, b, l, m)
				cancel()
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
				b.ReportMetric(outage, "outage-s")
				b.ReportMetric(res.Duration.Seconds(), "playbook-s")
				b.ReportMetric(copied.KeysPerSecond, "copy-keys/s")
				b.Logf("%d keys: consumer outage %.1f s, whole clean-up %.1f s, copy %.1f s at %.0f keys/s",
					keys, outage, res.Duration.Seconds(), copied.Elapsed, copied.KeysPerSecond)
			}
		})
	}
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
