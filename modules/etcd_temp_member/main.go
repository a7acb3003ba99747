// etcd_temp_member runs (state: started) or stops a temporary single-member etcd on this host as a
// transient systemd unit started over D-Bus: its own data dir, ports, name and token, the member's TLS
// files, the v2 API on, the host's etcd binary and user.
package etcd_temp_member

import (
	"context"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
	"github.com/etcdops/etcd/pkg/tempmember"
)

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p tempmember.Params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		units := systemd.New()
		defer units.Close()
		return tempmember.Run(ctx, t, p, units)
	})
}
