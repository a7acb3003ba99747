// etcd_ttl_leases attaches leases to v3 keys by prefix (OpenShift's TTL prefixes by default).
package etcd_ttl_leases

import (
	"context"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/leases"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	Prefixes        []leases.Prefix `arg:"prefixes"`
	Force           bool            `arg:"force" default:"false"`
	MaxKeysPerLease int             `arg:"max_keys_per_lease" default:"1000"`
	MaxTxnOps       int             `arg:"max_txn_ops" default:"128"`
	PageSize        int             `arg:"page_size" default:"1000"`
	Concurrency     int             `arg:"concurrency" default:"8"`
}

func (p *params) spec() leases.Spec {
	prefixes := p.Prefixes
	if len(prefixes) == 0 {
		prefixes = leases.OpenShiftDefaults
	}
	return leases.Spec{Prefixes: prefixes, Force: p.Force, MaxKeysPerLease: p.MaxKeysPerLease,
		MaxTxnOps: p.MaxTxnOps, PageSize: p.PageSize, Concurrency: p.Concurrency, Timeout: p.CommandTimeout}
}

func (p *params) Validate() error {
	if err := p.Options.Validate(); err != nil {
		return err
	}
	if p.Prefixes != nil && len(p.Prefixes) == 0 {
		return &module.ParamError{Param: "prefixes", Msg: "is an empty list; omit it for OpenShift's TTL prefixes, or list the prefixes to lease"}
	}
	s := p.spec()
	return s.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		cli, err := p.V3()
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		return leases.Attach(ctx, t, cli, p.spec())
	})
}
