// etcd_master_config switches an OpenShift 3.x master-config.yaml between the etcd2 and etcd3 storage
// backends and sets its etcd client URLs, keeping its comments and order, and reports the token/lease
// lifetimes it configures.
package etcd_master_config

import (
	"context"
	"time"

	"github.com/etcdops/etcd/pkg/masterconfig"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	Path           string   `arg:"path" type:"path" default:"/etc/origin/master/master-config.yaml"`
	StorageBackend string   `arg:"storage_backend" choices:"etcd3,etcd2"`
	EtcdURLs       []string `arg:"etcd_urls"`
}

func (p *params) spec() masterconfig.Spec {
	return masterconfig.Spec{Path: p.Path, StorageBackend: p.StorageBackend, EtcdURLs: p.EtcdURLs, Now: time.Now()}
}

func (p *params) Validate() error { return p.spec().Validate() }

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		return masterconfig.Ensure(t, p.spec())
	})
}
