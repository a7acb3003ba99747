// Command etcd_cluster_info is the Ansible module that reads etcd cluster facts (read-only).
package main

import (
	"context"

	"github.com/etcdops/etcd/pkg/clusterinfo"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	V3Prefixes []string `arg:"v3_prefixes"`
	V2         bool     `arg:"v2" default:"false"`
}

func (p *params) Validate() error { return p.Options.Validate() }

func main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		// Read-only: check mode gathers the same facts, and changed stays false.
		info, err := clusterinfo.Gather(ctx, &p.Options, clusterinfo.Spec{V3Prefixes: p.V3Prefixes, V2: p.V2})
		if info != nil {
			for _, w := range info.Warnings {
				t.Warn("%s", w)
			}
		}
		return info, err
	})
}
