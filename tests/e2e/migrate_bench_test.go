package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
)

// BenchmarkMigrationOutage measures the consumer outage (the master units down, by systemd's clock) and
// the time steps 1-11 took (both as the playbook records them in its state file) of offline and online migrations of 2k, 20k and 100k OpenShift-shaped v2 keys (issue
// 18's targets are set at 2k and 100k), each on a fresh 3-host lab. Run with `make bench-migrate` (-benchtime 1x: one migration per size and mode).
//
// Each runs with Ansible's default connection (ssh, pipelining off), and again with pipelining on
// (".../pipelining"): most of the outage's tasks are short, and pipelining saves each of them the
// transfer of the module and a round trip.
func BenchmarkMigrationOutage(b *testing.B) {
	for _, mode := range []string{"offline", "online"} {
		for _, keys := range []int{2000, 20000, 100000} {
			for _, pipelining := range []bool{false, true} {
				// Both variants one level deeper, so that a pattern can pick either alone.
				name := fmt.Sprintf("%s/%dk/ssh", mode, keys/1000)
				if pipelining {
					name = fmt.Sprintf("%s/%dk/pipelining", mode, keys/1000)
				}
				b.Run(name, func(b *testing.B) { benchMigration(b, mode, keys, pipelining) })
			}
		}
	}
}

func benchMigration(b *testing.B, mode string, keys int, pipelining bool) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l, _ := migrationLab(b, keys)
		b.StartTimer()
		res := runPlaybookWithin(b, l, "migrate_v2_to_v3.yml", lab.Run{
			// The lab's inventory names the master units; an openshift-ansible inventory does not, and the
			// playbook probes them (the default measured here).
			ExtraVars: map[string]any{"etcd_migration_mode": mode, "openshift_master_services": []string{}},
			Env:       map[string]string{"ANSIBLE_PIPELINING": strconv.FormatBool(pipelining)},
		}, 20*time.Minute)
		b.StopTimer()
		if res.Err != nil {
			b.Fatalf("migration failed: %v\n%s", res.Err, res.Failures())
		}
		st := migrationState(b, l)
		outage, steps := stateSeconds(b, st, "outage_seconds"), stateSeconds(b, st, "steps_seconds")
		b.ReportMetric(outage, "outage-s")
		b.ReportMetric(steps, "steps-s")
		b.ReportMetric(res.Duration.Seconds(), "playbook-s")
		b.Logf("%s, %d keys: consumer outage %.1f s (the master units, by systemd), steps 1-11 %.1f s, whole playbook "+
			"%.1f s; the slowest tasks of steps 1-11: %s", mode, keys, outage, steps, res.Duration.Seconds(),
			slowestTasks(res, "Note when steps 1-11 start", "Note the outage and how long steps 1-11 took", 8))
	}
}

// slowestTasks lists the n longest tasks (wall time over all their hosts) run between the tasks named
// from and to, and how many tasks ran there: where a step's seconds go.
func slowestTasks(res *lab.Result, from, to string, n int) string {
	type took struct {
		name string
		d    time.Duration
	}
	var all []took
	in, seen := false, map[int]bool{}
	for _, t := range res.Tasks {
		if strings.HasSuffix(t.Task, from) {
			in = true
		}
		if in && !seen[t.Index] {
			seen[t.Index] = true
			all = append(all, took{t.Task, t.End.Sub(t.Start)})
		}
		if strings.HasSuffix(t.Task, to) {
			break
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].d > all[j].d })
	parts := []string{fmt.Sprintf("%d tasks", len(all))}
	var rest time.Duration
	for i, t := range all {
		if i < n {
			parts = append(parts, fmt.Sprintf("%s %.1f s", t.name, t.d.Seconds()))
		} else {
			rest += t.d
		}
	}
	// The rest is mostly Ansible's own cost per task: what fewer tasks would save.
	if len(all) > n {
		parts = append(parts, fmt.Sprintf("the other %d tasks %.1f s", len(all)-n, rest.Seconds()))
	}
	return strings.Join(parts, "; ")
}
