package main

import (
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"strings"

	"github.com/etcdops/etcd/lab/k8s"
)

// k8sLab runs `labctl k8s-up` and `labctl k8s-down`: the single-node Kubernetes lab with its hosted
// etcd (lab/k8s, docs/hosted.md).
func k8sLab(cmd string, args []string) error {
	fs := flag.NewFlagSet("labctl "+cmd, flag.ExitOnError)
	spec := k8s.Spec{Persistent: true}
	fs.StringVar(&spec.Root, "root", k8s.DefaultRoot, "where the k8s lab lives")
	fs.StringVar(&spec.Cache, "cache", k8s.DefaultCache, "binaries and images built by make k8s-binaries")
	fs.StringVar(&spec.Version, "version", k8s.DefaultVersion, "Kubernetes version (as built)")
	hosted := fs.Bool("hosted", true, "deploy the hosted control plane (etcd StatefulSet, stand-ins)")
	fs.Parse(args)
	if cmd == "k8s-down" {
		states, _ := filepath.Glob(filepath.Join(spec.Root, "*", "state.json"))
		if len(states) == 0 {
			logf("no k8s lab under %s", spec.Root)
		}
		for _, st := range states {
			l, err := k8s.Load(filepath.Dir(st))
			if errors.Is(err, iofs.ErrNotExist) {
				continue
			} else if err != nil {
				return err
			}
			l.SetLog(logf)
			if err := l.Destroy(); err != nil {
				return err
			}
		}
		return nil
	}
	l, err := k8s.Create(spec, logf)
	if err != nil {
		return err
	}
	if *hosted {
		if err := l.DeployHosted(); err != nil {
			return err
		}
	}
	o := l.EtcdConn()
	fmt.Printf("kubectl: %s --kubeconfig %s get pods -A\n", filepath.Join(spec.BinDir(), "kubectl"), l.Kubeconfig)
	fmt.Printf("etcdctl: ETCDCTL_API=3 etcdctl --cacert %s --cert %s --key %s --endpoints %s member list\n",
		o.CACert, o.ClientCert, o.ClientKey, strings.Join(o.Endpoints, ","))
	fmt.Printf("shell in the namespace: nsenter --net=/run/netns/%s\n", k8s.NetNS)
	return nil
}
