package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	"github.com/etcdops/etcd/pkg/etcdconn"
)

// demo: a 3-host lab seeded with OpenShift-shaped v2 data, the main playbook over SSH (each task shown as
// it starts), a short summary (members, keys in v3, leases, outage), then teardown unless -keep. The
// task lines, the playbook's whole JSON report and the summary are kept in the file -log names.
func demo(args []string) error {
	fs := flag.NewFlagSet("labctl demo", flag.ExitOnError)
	name := fs.String("name", "demo", "lab name")
	keys := fs.Int("keys", 2000, "OpenShift-shaped v2 keys to seed")
	pb := fs.String("playbook", "playbooks/cluster_facts.yml", "the playbook to run against the lab")
	vars := fs.String("e", "", "extra vars for the playbook, as JSON")
	etcd := fs.String("etcd", "3.4", "etcd on the hosts: 3.4 or 3.6")
	keep := fs.Bool("keep", false, "leave the lab up afterwards (and print how to reach it)")
	logPath := fs.String("log", "build/demo-"+time.Now().UTC().Format("20060102T150405Z")+".log", "the run's full log")
	fs.Parse(args)
	if _, err := os.Stat(*pb); err != nil {
		return fmt.Errorf("playbook %s: %v; pass -playbook (make demo DEMO_PLAYBOOK=…)", *pb, err)
	}
	extra := map[string]any{}
	if *vars != "" {
		if err := json.Unmarshal([]byte(*vars), &extra); err != nil {
			return fmt.Errorf("-e: %v; give a JSON object, e.g. -e '{\"key\": \"value\"}'", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(*logPath)
	if err != nil {
		return fmt.Errorf("-log: %v", err)
	}
	defer func() { logFile.Close(); fmt.Printf("full log: %s\n", *logPath) }()
	logOut = io.MultiWriter(os.Stderr, logFile)
	start := time.Now()
	l, err := lab.Create(lab.Spec{Name: *name, Hosts: 3, Masters: true, Etcd: *etcd, Persistent: true}, logf)
	if err != nil {
		return err
	}
	teardown := func() {
		if !*keep {
			if err := l.Destroy(); err != nil {
				logf("teardown: %v", err)
			}
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; logf("interrupted"); teardown(); os.Exit(130) }()
	defer teardown()
	logf("lab up in %s", time.Since(start).Round(100*time.Millisecond))

	ctx := context.Background()
	m, err := l.SeedV2(ctx, *keys, 1)
	if err != nil {
		return err
	}
	logf("seeded %d v2 keys (%d TTL keys, %d hidden, %.1f MiB) and %d directories", m.Count.Keys, m.Count.TTLKeys,
		m.Count.Hidden, float64(m.Count.Bytes)/(1<<20), m.Count.Dirs)

	mon := watch(l)
	logf("running %s over SSH on %d hosts", *pb, len(l.Hosts))
	res, err := l.Playbook(ctx, lab.Run{Playbook: *pb, ExtraVars: extra, Progress: io.MultiWriter(os.Stderr, logFile)})
	mon.stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "\n== the playbook's JSON report ==\n%s\n", res.Raw)
	summary(ctx, io.MultiWriter(os.Stdout, logFile), l, m, res, mon)
	if *keep {
		fmt.Println()
		printStatus(l)
		fmt.Printf("tear down: make lab-down LAB_NAME=%s\n", l.Spec.Name)
	}
	if res.Err != nil {
		return fmt.Errorf("playbook failed: %v", res.Err)
	}
	return nil
}

// monitor samples, while the playbook runs, whether etcd answers a linearizable read through any
// member and whether every master API unit is active; outages are the summed unavailable time.
type monitor struct {
	done                chan struct{}
	wg                  sync.WaitGroup
	etcdDown, apiDown   time.Duration
	etcdLongest, apiMax time.Duration
}

func watch(l *lab.Lab) *monitor {
	mon := &monitor{done: make(chan struct{})}
	o := l.Conn()
	o.DialTimeout = time.Second
	mon.wg.Add(1)
	go func() {
		defer mon.wg.Done()
		var etcdRun, apiRun time.Duration
		last := time.Now()
		for {
			select {
			case <-mon.done:
				return
			case <-time.After(500 * time.Millisecond):
			}
			up := etcdUp(&o)
			api := true
			for _, h := range l.Members() {
				api = api && l.UnitActive(h, lab.MasterServices[0])
			}
			d := time.Since(last)
			last = time.Now()
			if !up {
				mon.etcdDown += d
				etcdRun += d
				mon.etcdLongest = max(mon.etcdLongest, etcdRun)
			} else {
				etcdRun = 0
			}
			if !api {
				mon.apiDown += d
				apiRun += d
				mon.apiMax = max(mon.apiMax, apiRun)
			} else {
				apiRun = 0
			}
		}
	}()
	return mon
}

func (m *monitor) stop() { close(m.done); m.wg.Wait() }

func etcdUp(o *etcdconn.Options) bool {
	cli, err := o.V3()
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "/demo-probe")
	return err == nil
}

func summary(ctx context.Context, w io.Writer, l *lab.Lab, m *dataset.Manifest, res *lab.Result, mon *monitor) {
	fmt.Fprintf(w, "\n== %s: %s in %s ==\n", l.Spec.Name, statusWord(res), res.Duration.Round(100*time.Millisecond))
	hosts := make([]string, 0, len(res.Stats))
	for h := range res.Stats {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		s := res.Stats[h]
		fmt.Fprintf(w, "  %-8s ok=%d changed=%d failed=%d unreachable=%d\n", h, s.OK, s.Changed, s.Failures, s.Unreachable)
	}
	if f := res.Failures(); f != "" {
		fmt.Fprint(w, "failures:\n"+f)
	}
	o := l.Conn()
	cli, err := o.V3()
	if err != nil {
		fmt.Fprintf(w, "etcd: unreachable after the run: %v\n", err)
		return
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if ml, err := cli.MemberList(cctx); err == nil {
		var ms []string
		for _, mem := range ml.Members {
			role := ""
			if mem.IsLearner {
				role = " (learner)"
			}
			ms = append(ms, fmt.Sprintf("%s %x%s", mem.Name, mem.ID, role))
		}
		sort.Strings(ms)
		fmt.Fprintf(w, "members:  %d — %s\n", len(ms), strings.Join(ms, ", "))
	} else {
		fmt.Fprintf(w, "members:  unavailable: %v\n", err)
	}
	if rep, err := dataset.VerifyV3(cctx, cli, m, false); err == nil {
		fmt.Fprintf(w, "v3 keys:  %d of %d seeded v2 keys present in v3 with their values (%d missing, %d differ; %d hidden keys seeded)\n",
			rep.Checked-len(rep.Missing)-len(rep.Mismatched), rep.Checked, len(rep.Missing), len(rep.Mismatched), m.Count.Hidden)
		fmt.Fprintf(w, "leases:   %d of %d keys that expire in v2 (TTL keys, keys in TTL dirs) carry a lease", rep.Leased, rep.Leasable)
		if ls, err := cli.Leases(cctx); err == nil {
			fmt.Fprintf(w, " (%d leases granted)", len(ls.Leases))
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "v3 keys:  could not check: %v\n", err)
	}
	fmt.Fprintf(w, "outage:   etcd unavailable %s (longest %s); master API down %s (longest %s)\n",
		mon.etcdDown.Round(100*time.Millisecond), mon.etcdLongest.Round(100*time.Millisecond),
		mon.apiDown.Round(100*time.Millisecond), mon.apiMax.Round(100*time.Millisecond))
}

func statusWord(res *lab.Result) string {
	if res.Err != nil {
		return "FAILED"
	}
	return "ok"
}
