package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseReadsEveryMetricButNsPerOp(t *testing.T) {
	out := `goos: linux
BenchmarkMigrationOutage/online/100k/pipelining-2         	       1	158751971035 ns/op	        30.00 outage-s	        71.45 playbook-s	        34.40 steps-s
--- BENCH: BenchmarkMigrationOutage/online/100k/pipelining-2
BenchmarkTaskCost/pipelining=true 1 5 ns/op 0.91 worst/ping
PASS`
	got := parse(strings.NewReader(out), "migrate.txt", time.Time{})
	if len(got) != 4 {
		t.Fatalf("%d metrics: %+v", len(got), got)
	}
	if m := got[0]; m.bench != "BenchmarkMigrationOutage/online/100k/pipelining" || m.unit != "outage-s" || m.value != 30 {
		t.Fatalf("first metric: %+v", m)
	}
	if m := got[3]; m.bench != "BenchmarkTaskCost/pipelining=true" || m.unit != "worst/ping" || m.value != 0.91 {
		t.Fatalf("last metric: %+v", m)
	}
	for _, g := range goals {
		if g.bench.MatchString(got[0].bench) && g.unit == "outage-s" && g.ceiling != 40 {
			t.Fatalf("the online goal: %+v", g)
		}
	}
}
