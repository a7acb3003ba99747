// etcd_v2_copy copies an etcd v2 keyspace into a v2 store or a v3 keyspace, verifiably and resumably.
package etcd_v2_copy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2data"
)

type params struct {
	Source                  etcdconn.Options `arg:"source" required:"true"`
	Destination             etcdconn.Options `arg:"destination" required:"true"`
	TargetAPI               string           `arg:"target_api" required:"true" choices:"v2,v3"`
	Prefixes                []string         `arg:"prefixes" default:"/"`
	Exclude                 []string         `arg:"exclude"`
	SourceDataDir           string           `arg:"source_data_dir" type:"path"`
	SourceRead              string           `arg:"source_read" default:"auto" choices:"auto,api"`
	Concurrency             int              `arg:"concurrency" default:"8"`
	RequireEmptyDestination bool             `arg:"require_empty_destination" default:"false"`
	Verify                  bool             `arg:"verify" default:"true"`
	VerifyOnly              bool             `arg:"verify_only" default:"false"`
	InvalidUTF8             string           `arg:"invalid_utf8" default:"fail" choices:"fail,skip"`
	MaxTxnOps               int              `arg:"max_txn_ops" default:"128"`
	MaxKeysPerLease         int              `arg:"max_keys_per_lease" default:"1000"`
	LeaseGranularity        time.Duration    `arg:"lease_granularity" default:"10s"`
	LeasesGrantedAt         int64            `arg:"leases_granted_at"`
}

func (p *params) Validate() error {
	p.Source.Prefix, p.Destination.Prefix = "source.", "destination."
	if err := p.Source.Validate(); err != nil {
		return err
	}
	if err := p.Destination.Validate(); err != nil {
		return err
	}
	if p.TargetAPI == "v2" && slices.Equal(p.Source.Endpoints, p.Destination.Endpoints) {
		return &module.ParamError{Param: "destination.endpoints", Msg: "is the source itself; " + v2data.SameClusterFix}
	}
	for name, list := range map[string][]string{"prefixes": p.Prefixes, "exclude": p.Exclude} {
		for _, path := range list {
			if path == "" || path[0] != '/' {
				return &module.ParamError{Param: name, Msg: fmt.Sprintf("v2 paths start with '/', e.g. /kubernetes.io; got %q", path)}
			}
		}
	}
	switch {
	case p.Concurrency < 1:
		return &module.ParamError{Param: "concurrency", Msg: "must be at least 1 (8 is a good default)"}
	case p.MaxTxnOps < 1:
		return &module.ParamError{Param: "max_txn_ops", Msg: "must be at least 1 and at most the server's --max-txn-ops (128 by default)"}
	case p.MaxKeysPerLease < 1:
		return &module.ParamError{Param: "max_keys_per_lease", Msg: "must be at least 1, e.g. 1000"}
	case p.LeaseGranularity < time.Second:
		return &module.ParamError{Param: "lease_granularity", Msg: "must be at least 1s, e.g. 10s"}
	case p.LeasesGrantedAt < 0:
		return &module.ParamError{Param: "leases_granted_at", Msg: "is a time in seconds since 1970 (etcd_v2_migrate's now), or leave it out"}
	}
	return nil
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		var grantedAt time.Time
		if p.LeasesGrantedAt > 0 {
			grantedAt = time.Unix(p.LeasesGrantedAt, 0)
		}
		return v2data.Copy(ctx, t, v2data.Spec{
			Source: p.Source, Dest: p.Destination, TargetAPI: p.TargetAPI,
			Scope:         v2data.Scope{Prefixes: p.Prefixes, Exclude: p.Exclude},
			SourceDataDir: p.SourceDataDir, SourceRead: p.SourceRead, Concurrency: p.Concurrency,
			RequireEmptyDestination: p.RequireEmptyDestination, Verify: p.Verify, VerifyOnly: p.VerifyOnly,
			InvalidUTF8: p.InvalidUTF8, MaxTxnOps: p.MaxTxnOps, MaxKeysPerLease: p.MaxKeysPerLease,
			LeaseGranularity: p.LeaseGranularity, LeasesGrantedAt: grantedAt,
		})
	})
}
