// Command labctl brings the etcdops lab up and down for people and make targets:
//
//	labctl up [-name lab] [-hosts 3] [-masters] [-group new_etcd=3] [-etcd 3.4|3.6|3.2|3.3] [-seed-v2 N] [-seed-v3 N]
//	labctl down [-name lab]          labctl status [-name lab]
//	labctl seed -v2|-v3 N [-name lab] [-seed S]
//	labctl fault kill|stop|start|restart|corrupt HOST    labctl fault partition|heal HOST HOST
//	labctl demo [-keys 2000] [-playbook playbooks/cluster_facts.yml] [-keep]
//	labctl k8s-up [-hosted=true]     labctl k8s-down        (the k8s lab: lab/k8s, docs/hosted.md)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/etcdops/etcd/lab"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet("labctl "+cmd, flag.ExitOnError)
	name := fs.String("name", "lab", "lab name (a directory under -root)")
	root := fs.String("root", lab.DefaultRoot, "where labs live")
	var err error
	switch cmd {
	case "up":
		spec := lab.Spec{Persistent: true, Groups: map[string]int{}}
		fs.IntVar(&spec.Hosts, "hosts", 3, "etcd hosts in the initial cluster")
		fs.BoolVar(&spec.Masters, "masters", true, "etcd hosts are also OpenShift masters (consumer units, master-config.yaml)")
		fs.StringVar(&spec.Etcd, "etcd", "3.4", "etcd on the hosts: 3.4 (Debian), 3.6 (make etcd36), 3.2 or 3.3 (make etcd-old)")
		fs.StringVar(&spec.Cache, "cache", lab.DefaultCache, "base tree cache")
		fs.Func("group", "extra group of fresh hosts, NAME=COUNT (repeatable), e.g. new_etcd=3", func(v string) error {
			g, n, ok := strings.Cut(v, "=")
			c, err := strconv.Atoi(n)
			if !ok || err != nil {
				return fmt.Errorf("want NAME=COUNT, e.g. new_etcd=3")
			}
			spec.Groups[g] = c
			return nil
		})
		seed := addSeedFlags(fs)
		fs.Parse(args)
		spec.Name, spec.Root = *name, *root
		if spec.Etcd == "3.6" && *seed.v2 > 0 {
			fmt.Fprintln(os.Stderr, "labctl: -seed-v2: etcd 3.6 has no v2 API; use -seed-v3 N, or -etcd 3.4 for v2 data")
			os.Exit(2)
		}
		var l *lab.Lab
		start := time.Now()
		l, err = lab.Create(spec, logf)
		if err == nil {
			logf("lab %q up in %s", spec.Name, time.Since(start).Round(100*time.Millisecond))
			err = seed.run(l)
		}
		if err == nil {
			printStatus(l)
		}
	case "down":
		fs.Parse(args)
		var l *lab.Lab
		if l, err = load(*root, *name); err == nil {
			l.SetLog(logf)
			err = l.Destroy()
		} else if errors.Is(err, iofs.ErrNotExist) {
			logf("no lab %q under %s", *name, *root)
			err = nil
		}
	case "status":
		fs.Parse(args)
		var l *lab.Lab
		if l, err = load(*root, *name); err == nil {
			printStatus(l)
		}
	case "seed":
		seed := addSeedFlags(fs)
		fs.Parse(args)
		var l *lab.Lab
		if l, err = load(*root, *name); err == nil {
			err = seed.run(l)
		}
	case "fault":
		fs.Parse(args)
		var l *lab.Lab
		if l, err = load(*root, *name); err == nil {
			l.SetLog(logf)
			err = fault(l, fs.Args())
		}
	case "demo":
		err = demo(args)
	case "k8s-up", "k8s-down":
		err = k8sLab(cmd, args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labctl:", err)
		os.Exit(1)
	}
}

type seedFlags struct {
	v2, v3 *int
	seed   *int64
}

func addSeedFlags(fs *flag.FlagSet) seedFlags {
	return seedFlags{
		v2:   fs.Int("seed-v2", 0, "write this many OpenShift-shaped v2 keys (manifest: <lab>/manifest-v2.json)"),
		v3:   fs.Int("seed-v3", 0, "write this many v3 keys (manifest: <lab>/manifest-v3.json)"),
		seed: fs.Int64("seed", 1, "dataset seed (same seed and count, same data)"),
	}
}

func (s seedFlags) run(l *lab.Lab) error {
	ctx := context.Background()
	if *s.v2 > 0 {
		start := time.Now()
		m, err := l.SeedV2(ctx, *s.v2, *s.seed)
		if err != nil {
			return err
		}
		logf("seeded %d v2 entries (%d TTL keys, %d dirs) in %s; manifest %s", len(m.Entries), m.Count.TTLKeys,
			m.Count.Dirs, time.Since(start).Round(100*time.Millisecond), filepath.Join(l.Dir, "manifest-v2.json"))
	}
	if *s.v3 > 0 {
		start := time.Now()
		m, err := l.SeedV3(ctx, *s.v3, *s.seed)
		if err != nil {
			return err
		}
		logf("seeded %d v3 keys (%d with leases) in %s; manifest %s", len(m.Entries), m.Count.TTLKeys,
			time.Since(start).Round(100*time.Millisecond), filepath.Join(l.Dir, "manifest-v3.json"))
	}
	return nil
}

func fault(l *lab.Lab, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("fault: want ACTION HOST [HOST], e.g. `fault kill etcd2` or `fault partition etcd1 etcd2`")
	}
	var hosts []*lab.Host
	for _, n := range args[1:] {
		h := l.Host(n)
		if h == nil {
			return fmt.Errorf("fault: no host %q in lab %q (hosts: %s)", n, l.Spec.Name, hostNames(l))
		}
		hosts = append(hosts, h)
	}
	switch args[0] {
	case "kill":
		return l.Kill(hosts[0])
	case "stop":
		return l.Stop(hosts[0])
	case "start":
		return l.Start(hosts[0])
	case "restart":
		return l.Restart(hosts[0])
	case "corrupt":
		files, err := l.CorruptDataDir(hosts[0])
		if err == nil {
			logf("%s: etcd stopped, overwrote parts of %s", hosts[0].Name, strings.Join(files, ", "))
		}
		return err
	case "partition", "heal":
		if len(hosts) != 2 {
			return fmt.Errorf("fault %s: give two hosts", args[0])
		}
		if args[0] == "heal" {
			return l.Heal(hosts...)
		}
		return l.Partition(hosts[0], hosts[1])
	}
	return fmt.Errorf("fault: unknown action %q; use kill, stop, start, restart, corrupt, partition or heal", args[0])
}

func load(root, name string) (*lab.Lab, error) {
	l, err := lab.Load(filepath.Join(root, name))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("no lab %q under %s: start one with `make lab-up` (flags go before the action: fault -name X kill etcd1): %w", name, root, err)
	}
	return l, err
}

func printStatus(l *lab.Lab) {
	fmt.Printf("lab %q (etcd %s), inventory: %s\n", l.Spec.Name, l.Spec.Etcd, l.Inventory)
	for _, h := range l.Hosts {
		state := "down"
		if h.Running() {
			state = "up"
		}
		fmt.Printf("  %-12s %-14s %-5s groups=%s\n", h.Name, h.Addr, state, strings.Join(h.Groups, ","))
	}
	fmt.Printf("ssh:     ssh -i %s root@%s\n", l.SSHKey, l.Hosts[0].Addr)
	fmt.Printf("etcdctl: ETCDCTL_API=3 etcdctl --cacert %s --cert %s --key %s --endpoints %s member list\n",
		l.CACert, l.ClientCert, l.ClientKey, strings.Join(l.Endpoints(), ","))
	fmt.Printf("ansible: ansible-playbook -i %s PLAYBOOK\n", l.Inventory)
}

func hostNames(l *lab.Lab) string {
	var n []string
	for _, h := range l.Hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
}

// logOut is where logf writes: stderr, and the demo's log file during a demo.
var logOut io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(logOut, "%s lab: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: labctl up|down|status|seed|fault|demo|k8s-up|k8s-down [flags]
  up      [-name lab] [-hosts 3] [-masters=true] [-group new_etcd=3] [-etcd 3.4|3.6|3.2|3.3] [-seed-v2 N] [-seed-v3 N]
  down    [-name lab]
  status  [-name lab]
  seed    [-name lab] [-seed-v2 N] [-seed-v3 N] [-seed S]
  fault   [-name lab] kill|stop|start|restart|corrupt HOST | partition|heal HOST HOST
  demo    [-name demo] [-keys 2000] [-playbook playbooks/cluster_facts.yml] [-e JSON] [-etcd 3.4] [-keep]
  k8s-up  [-hosted=true] [-version v1.31.4]      k8s-down`)
	os.Exit(2)
}
