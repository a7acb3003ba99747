// etcd_member_config reads and writes an etcd member's configuration in the flavour the host keeps
// it in: an ETCD_* environment file, or a systemd drop-in whose ExecStart passes the flags.
package etcd_member_config

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/memberconf"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p memberconf.Params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		units := systemd.New()
		defer units.Close()
		return memberconf.Run(ctx, t, p, units, time.Now())
	})
}
