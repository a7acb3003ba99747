package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
)

// BenchmarkRecovery measures the time to a healthy cluster of recover_member.yml (etcd3's data
// corrupted) and restore_from_snapshot.yml (etcd2's and etcd3's destroyed, a fresh snapshot of etcd1)
// at 20k and 100k OpenShift-shaped v3 keys, each next to its floor: the time etcd itself needs to start
// from the same data (etcd3 restarted; all three stopped and started together), measured on the same
// lab just before. The ratios are printed as one table. Run with `make bench-recovery` (-benchtime 1x;
// RECOVERY_BENCH='BenchmarkRecovery/20k' for one size).
func BenchmarkRecovery(b *testing.B) {
	var rows []string
	for _, keys := range []int{20000, 100000} {
		b.Run(fmt.Sprintf("%dk", keys/1000), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rows = append(rows, recoveryFigures(b, keys)...)
			}
		})
	}
	if len(rows) > 0 {
		fmt.Fprintf(os.Stdout, "\n%-6s %-22s %9s %11s %7s\n%s\n", "keys", "playbook", "floor s", "playbook s", "ratio",
			strings.Join(rows, "\n"))
	}
}

// recoveryFigures runs both recoveries on a fresh lab seeded with keys v3 keys and returns a table row each.
func recoveryFigures(b *testing.B, keys int) []string {
	b.StopTimer()
	ansibletest.Install(b) // once per process, outside the measured runs
	l := lab.Up(b, lab.Spec{Hosts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if _, err := l.SeedV3(ctx, keys, 1); err != nil {
		b.Fatal(err)
	}
	etcd2, etcd3 := l.Members()[1], l.Members()[2]
	var rows []string
	row := func(name string, floor time.Duration, res *lab.Result) {
		if res.Err != nil {
			b.Fatalf("%s failed: %v\n%s", name, res.Err, res.Failures())
		}
		if err := l.WaitHealthy(); err != nil {
			b.Fatal(err)
		}
		ratio := res.Duration.Seconds() / floor.Seconds()
		b.ReportMetric(res.Duration.Seconds(), name+"-s")
		b.ReportMetric(ratio, name+"/floor")
		rows = append(rows, fmt.Sprintf("%-6s %-22s %9.1f %11.1f %6.1f×", fmt.Sprintf("%dk", keys/1000), name,
			floor.Seconds(), res.Duration.Seconds(), ratio))
	}

	floor := startFloor(b, l, etcd3)
	if _, err := l.CorruptDataDir(etcd3); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	res := playbook(b, l, "recover_member.yml", map[string]any{"etcd_recover_member": etcd3.Name})
	b.StopTimer()
	row("recover_member", floor, res)

	floor = startFloor(b, l, l.Members()...)
	for _, h := range []*lab.Host{etcd2, etcd3} {
		if _, err := l.CorruptDataDir(h); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer()
	res = playbook(b, l, "restore_from_snapshot.yml", nil)
	b.StopTimer()
	row("restore_from_snapshot", floor, res)
	return rows
}

// startFloor stops etcd on hosts (one at a time, the quicker way), then starts them together and
// returns the time until every member answers a linearizable read: what etcd itself needs to start
// from the data it has.
func startFloor(b *testing.B, l *lab.Lab, hosts ...*lab.Host) time.Duration {
	b.Helper()
	for _, h := range hosts {
		if out, err := l.Exec(h, "systemctl", "stop", "etcd"); err != nil {
			b.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}
	start := time.Now()
	for _, h := range hosts {
		if out, err := l.Exec(h, "systemctl", "start", "--no-block", "etcd"); err != nil {
			b.Fatalf("%s: %s %v", h.Name, out, err)
		}
	}
	if err := l.WaitHealthy(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
