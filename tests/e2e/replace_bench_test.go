package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
)

// BenchmarkReplaceNodes (make bench-replace) times replace_nodes.yml moving 3 members (etcd 3.4, no
// masters) holding 20k and 100k v3 keys onto 3 fresh hosts, with TestReplaceNodes' writer on all six
// endpoints, one fresh lab per size. The anchor is the seeding of the same keys on the same lab just
// before, by dataset.WriteV3's 8 parallel writers: the lab's write ceiling, the time this machine takes
// to write the keyspace once. Each new member receives the keyspace once (a snapshot) and the old ones
// leave, so move-x-seed tells the playbook's cost in keyspace writes, and how it grows with the keys.
// The writer's longest run of puts over 1 s (stall-s) is reported beside its share of the move.
func BenchmarkReplaceNodes(b *testing.B) {
	for _, keys := range []int{20000, 100000} {
		b.Run(fmt.Sprintf("%dk", keys/1000), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l := lab.Up(b, lab.Spec{Hosts: 3, Groups: map[string]int{"new_etcd": 3}})
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
				seeded := time.Now()
				m, err := l.SeedV3(ctx, keys, 1)
				if err != nil {
					b.Fatal(err)
				}
				seed := time.Since(seeded)
				old, fresh := l.Members(), freshHosts(l)
				w := startWriter(b, l, append(append([]*lab.Host{}, old...), fresh...))
				b.StartTimer()
				res := runPlaybookWithin(b, l, "replace_nodes.yml", lab.Run{}, time.Hour)
				b.StopTimer()
				wr := w.stop()
				if res.Err != nil {
					b.Fatalf("replace_nodes.yml failed: %v\n%s", res.Err, res.Failures())
				}
				if len(wr.failed) > 0 {
					b.Fatalf("%d writes failed during the move: %v", len(wr.failed), wr.failed[:min(len(wr.failed), 5)])
				}
				newCli := l.V3Client(b, fresh...)
				if rep, err := dataset.VerifyV3(ctx, newCli, m, false); err != nil || !rep.OK(true) {
					b.Fatalf("the seeded keys after the move: %v %v", rep, err)
				}
				checkKeys(ctx, b, newCli, wr.acked, "written during the move")
				cancel()
				move := res.Duration.Seconds()
				b.ReportMetric(move, "move-s")
				b.ReportMetric(seed.Seconds(), "seed-s")
				b.ReportMetric(move/seed.Seconds(), "move-x-seed")
				b.ReportMetric(wr.stalled.Seconds(), "stall-s")
				b.ReportMetric(100*wr.stalled.Seconds()/move, "stall-%-of-move")
				b.Logf("%d keys: moved onto 3 new hosts in %.1f s = %.1f× seeding the keys at the lab's write ceiling (%.1f s); "+
					"writer: %d puts acknowledged, 0 failed, %s, longest put %s, longest run of puts over 1 s %s (%.1f %% of the move)",
					keys, move, move/seed.Seconds(), seed.Seconds(), len(wr.acked), wr.retries(), wr.longest.Round(time.Millisecond),
					wr.stalled.Round(time.Millisecond), 100*wr.stalled.Seconds()/move)
			}
		})
	}
}
