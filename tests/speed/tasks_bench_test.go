// Package speed holds the benchmark of what one module task costs the user (make bench-tasks).
package speed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
)

const rounds = 10

// BenchmarkTaskCost runs, over SSH on a one-host lab and in one playbook, one module task on a host
// that has never run one (the first transfer), then rounds of ansible.builtin.ping and of every
// module, interleaved so that load from other jobs falls on all of them alike. Each module task is
// given an unknown option: it is copied (or found in the host's cache), started, rejects its input and
// reports, which is the per-task cost the collection adds, without the module's own work. Figures
// are per task, as ratios to ping in the same run; pipelining off and on.
// BENCH_TASKS_COLLECTIONS=<path> measures another install of the collection (e.g. a main checkout's
// build/collections) with the same playbook.
func BenchmarkTaskCost(b *testing.B) {
	env := ansibletest.Install(b)
	if p := os.Getenv("BENCH_TASKS_COLLECTIONS"); p != "" {
		env = append(env, "ANSIBLE_COLLECTIONS_PATH="+p)
	}
	root := ansibletest.Root(b)
	entries, err := os.ReadDir(filepath.Join(root, "modules"))
	if err != nil {
		b.Fatal(err)
	}
	var modules []string
	for _, e := range entries {
		if e.IsDir() {
			modules = append(modules, e.Name())
		}
	}
	for _, pipelining := range []string{"off", "on"} {
		b.Run("pipelining="+pipelining, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				l := lab.Up(b, lab.Spec{Hosts: 1})
				pb := filepath.Join(b.TempDir(), "tasks.yml")
				if err := os.WriteFile(pb, []byte(playbook(modules)), 0o644); err != nil {
					b.Fatal(err)
				}
				e := lab.EnvMap(env)
				e["ANSIBLE_PIPELINING"] = map[string]string{"off": "False", "on": "True"}[pipelining]
				res, err := l.Playbook(context.Background(), lab.Run{Playbook: pb, Env: e})
				if err != nil {
					b.Fatal(err)
				}
				if res.Err != nil {
					b.Fatalf("playbook: %v", res.Err)
				}
				report(b, res.Raw, modules)
			}
		})
	}
}

// playbook: ping to open the SSH connection, the first module task, then the rounds.
func playbook(modules []string) string {
	var s strings.Builder
	s.WriteString("- hosts: etcd\n  gather_facts: false\n  tasks:\n")
	task := func(name, module string) {
		args := "{bench_unknown_option: 1}" // every module rejects it before any work
		if module == "ansible.builtin.ping" {
			args = "{}"
		}
		fmt.Fprintf(&s, "    - name: %s\n      %s: %s\n      ignore_errors: true\n", name, module, args)
	}
	task("warm ping", "ansible.builtin.ping")
	task("first "+modules[0], "etcdops.etcd."+modules[0])
	for r := 0; r < rounds; r++ {
		task("ping", "ansible.builtin.ping")
		for _, m := range modules {
			task(m, "etcdops.etcd."+m)
		}
	}
	return s.String()
}

// report reads each task's duration from the JSON callback's output and prints the table.
func report(b *testing.B, raw []byte, modules []string) {
	var out struct {
		Plays []struct {
			Tasks []struct {
				Task struct {
					Name     string `json:"name"`
					Duration struct {
						Start time.Time `json:"start"`
						End   time.Time `json:"end"`
					} `json:"duration"`
				} `json:"task"`
			} `json:"tasks"`
		} `json:"plays"`
	}
	if i := strings.IndexByte(string(raw), '{'); i >= 0 {
		raw = raw[i:]
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		b.Fatalf("callback output: %v", err)
	}
	sum := map[string]time.Duration{}
	n := map[string]int{}
	for _, p := range out.Plays {
		for _, t := range p.Tasks {
			sum[t.Task.Name] += t.Task.Duration.End.Sub(t.Task.Duration.Start)
			n[t.Task.Name]++
		}
	}
	if n["ping"] != rounds {
		b.Fatalf("%d ping tasks in the output, want %d", n["ping"], rounds)
	}
	ping := sum["ping"] / rounds
	first := "first " + modules[0]
	var lines []string
	lines = append(lines, fmt.Sprintf("%-24s %8s %6s", "task", "s/task", "×ping"),
		fmt.Sprintf("%-24s %8.3f %6.2f", "ansible.builtin.ping", ping.Seconds(), 1.0),
		fmt.Sprintf("%-24s %8.3f %6.2f", first+" (1st)", sum[first].Seconds(), sum[first].Seconds()/ping.Seconds()))
	b.ReportMetric(sum[first].Seconds()/ping.Seconds(), "first/ping")
	worst := 0.0
	sorted := append([]string(nil), modules...)
	sort.Strings(sorted)
	for _, m := range sorted {
		if n[m] != rounds {
			b.Fatalf("%d %s tasks in the output, want %d", n[m], m, rounds)
		}
		per := sum[m] / rounds
		ratio := per.Seconds() / ping.Seconds()
		worst = max(worst, ratio)
		lines = append(lines, fmt.Sprintf("%-24s %8.3f %6.2f", m, per.Seconds(), ratio))
	}
	b.ReportMetric(worst, "worst/ping")
	b.ReportMetric(ping.Seconds(), "ping-s")
	b.Log("\n" + strings.Join(lines, "\n"))
}
