// Command etcd_cluster_info is the Ansible module that reads etcd cluster facts (read-only).
package etcd_cluster_info

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/etcdops/etcd/pkg/clusterinfo"
	"github.com/etcdops/etcd/pkg/etcdconn"
	"github.com/etcdops/etcd/pkg/module"
)

type params struct {
	etcdconn.Options
	V3Prefixes []string `arg:"v3_prefixes"`
	V2         bool     `arg:"v2" default:"false"`
	V2DataDir  string   `arg:"v2_data_dir" type:"path"`
}

func (p *params) Validate() error {
	if p.V2DataDir != "" {
		if !p.V2 {
			return fmt.Errorf("v2_data_dir: set v2=true too (the hidden nodes it names are read through the v2 API)")
		}
		if st, err := os.Stat(filepath.Join(p.V2DataDir, "member")); err != nil || !st.IsDir() {
			return fmt.Errorf("v2_data_dir: %s holds no member/ directory; give the member's data dir (ETCD_DATA_DIR, e.g. /var/lib/etcd)", p.V2DataDir)
		}
	}
	return p.Options.Validate()
}

// Main runs the module; the multi-call executable (cmd/etcdops) calls it by the module's name.
func Main() {
	var p params
	module.Main(&p, func(ctx context.Context, t *module.Task) (any, error) {
		// Read-only: check mode gathers the same facts, and changed stays false.
		info, err := clusterinfo.Gather(ctx, &p.Options, clusterinfo.Spec{V3Prefixes: p.V3Prefixes, V2: p.V2, V2DataDir: p.V2DataDir})
		if info != nil {
			for _, w := range info.Warnings {
				t.Warn("%s", w)
			}
		}
		return info, err
	})
}
