// etcd_raft_log_info reads where a member's raft log stands from its data dir (pkg/v2disk).
package etcd_raft_log_info

import (
	"context"
	"path/filepath"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2disk"
)

type params struct {
	DataDir string `arg:"data_dir" type:"path" required:"true"`
}

func (p *params) Validate() error {
	if !filepath.IsAbs(p.DataDir) {
		return &module.ParamError{Param: "data_dir", Msg: "must be an absolute path: the member's data dir, e.g. /var/lib/etcd"}
	}
	return nil
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		return v2disk.LogPosition(p.DataDir)
	})
}
