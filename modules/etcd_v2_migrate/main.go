// etcd_v2_migrate writes a stopped member's v2 keyspace into its own v3 db, as `etcdctl migrate` does,
// hidden keys included (pkg/v2migrate).
package etcd_v2_migrate

import (
	"context"
	"path/filepath"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/v2migrate"
)

type params struct {
	DataDir string `arg:"data_dir" type:"path" required:"true"`
	Index   uint64 `arg:"index"`
	Term    uint64 `arg:"term"`
	Now     int64  `arg:"now"`
}

func (p *params) Validate() error {
	switch {
	case !filepath.IsAbs(p.DataDir):
		return &module.ParamError{Param: "data_dir", Msg: "must be an absolute path: the stopped member's data dir, e.g. /var/lib/etcd"}
	case p.Term > 0 && p.Index == 0:
		return &module.ParamError{Param: "term", Msg: "is the term of the entry at index: give index too, or leave both out"}
	case p.Now < 0:
		return &module.ParamError{Param: "now", Msg: "is a time in seconds since 1970 (date +%s), or leave it out for the time of the task"}
	}
	return nil
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		cfg := v2migrate.Config{DataDir: p.DataDir, CheckOnly: t.CheckMode, Index: p.Index, Term: p.Term}
		if p.Now > 0 {
			cfg.Now = time.Unix(p.Now, 0)
		}
		res, err := v2migrate.Migrate(cfg)
		if err != nil {
			return nil, err
		}
		t.Changed()
		return res, nil
	})
}
