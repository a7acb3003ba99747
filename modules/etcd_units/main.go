// etcd_units starts or stops the systemd services an etcd procedure touches and proves that started
// ones keep running.
package etcd_units

import (
	"context"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/service"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p service.Params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		units := systemd.New()
		defer units.Close()
		return service.Run(ctx, t, p, units)
	})
}
