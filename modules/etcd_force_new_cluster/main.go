// etcd_force_new_cluster turns the member on this host into a one-member cluster keeping its data:
// one start with force-new-cluster from a runtime systemd drop-in that is always removed, then a
// normal restart.
package etcd_force_new_cluster

import (
	"context"
	"net/url"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/forcenew"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

type params struct {
	etcdconn.Options
	Service string        `arg:"service" default:"etcd"`
	RunDir  string        `arg:"runtime_unit_dir" type:"path" default:"/run/systemd/system"`
	Timeout time.Duration `arg:"timeout" default:"2m"`
	Others  []string      `arg:"cluster_endpoints"`
	Force   bool          `arg:"force" default:"false"`

	unit string
}

func (p *params) Validate() error {
	if len(p.Endpoints) != 1 {
		return &module.ParamError{Param: "endpoints", Msg: "give exactly one endpoint: this member's own client URL"}
	}
	unit, err := systemd.UnitName(p.Service)
	if err != nil {
		return &module.ParamError{Param: "service", Msg: err.Error()}
	}
	p.unit = unit
	for _, ep := range p.Others {
		if u, err := url.Parse(ep); err != nil || u.Port() == "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return &module.ParamError{Param: "cluster_endpoints", Msg: "give client URLs such as https://10.0.0.12:2379 (without credentials)"}
		}
	}
	return p.Options.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		units := systemd.New()
		defer units.Close()
		return forcenew.Run(ctx, t, forcenew.Spec{Conn: p.Options, Unit: p.unit, RunDir: p.RunDir,
			Timeout: p.Timeout, Others: p.Others, Force: p.Force, Units: units})
	})
}
