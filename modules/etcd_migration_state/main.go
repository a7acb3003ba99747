// etcd_migration_state reports the facts a v2→v3 migration's preflight decides on: v2 data present,
// v3 keys under the migrated prefixes, the v3 revision. It never changes anything.
package main

import (
	"context"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/migstate"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	Prefixes []string `arg:"prefixes" default:"/kubernetes.io,/openshift.io"`
}

func (p *params) Validate() error { return p.Options.Validate() }

func main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		return migstate.Read(ctx, &p.Options, p.Prefixes)
	})
}
