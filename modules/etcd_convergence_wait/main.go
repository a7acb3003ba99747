// Command etcd_convergence_wait is the Ansible module that waits until etcd members agree on a
// leader and their raft indexes are within a tolerance, optionally holding the same data (read-only).
package etcd_convergence_wait

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/convergence"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	Tolerance      uint64        `arg:"tolerance" default:"1"`
	StablePolls    int           `arg:"stable_polls" default:"2"`
	Interval       time.Duration `arg:"interval" default:"0.5s"`
	Timeout        time.Duration `arg:"timeout" default:"300s"`
	RequireHealthy bool          `arg:"require_healthy" default:"false"`
	RequireSame    bool          `arg:"require_same_data" default:"false"`
}

func (p *params) Validate() error {
	if p.StablePolls < 1 {
		return &module.ParamError{Param: "stable_polls", Msg: "must be at least 1, e.g. 2"}
	}
	if p.Interval <= 0 {
		return &module.ParamError{Param: "interval", Msg: "must be greater than 0, e.g. 0.5s"}
	}
	if p.Timeout < p.Interval {
		return &module.ParamError{Param: "timeout", Msg: "must be at least interval, e.g. 300s"}
	}
	return p.Options.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		// Read-only: in check mode it waits the same way, so a dry run shows whether the cluster
		// would have converged.
		return convergence.Wait(ctx, &p.Options, convergence.Spec{
			Tolerance: p.Tolerance, StablePolls: p.StablePolls, Interval: p.Interval,
			Timeout: p.Timeout, RequireHealthy: p.RequireHealthy, RequireSameData: p.RequireSame,
		})
	})
}
