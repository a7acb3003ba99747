// etcdops is the collection's one executable: every module in one multi-call binary (one transfer to a
// host instead of one per module per task). It runs the module named by its file name
// (a copy Ansible makes as a binary module is named AnsiballZ_<module>) or by its first argument:
// `etcdops <module> <args file>`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/etcdops/etcd/modules/etcd_backup"
	"github.com/etcdops/etcd/modules/etcd_cluster_info"
	"github.com/etcdops/etcd/modules/etcd_convergence_wait"
	"github.com/etcdops/etcd/modules/etcd_force_new_cluster"
	"github.com/etcdops/etcd/modules/etcd_master_config"
	"github.com/etcdops/etcd/modules/etcd_member"
	"github.com/etcdops/etcd/modules/etcd_member_config"
	"github.com/etcdops/etcd/modules/etcd_raft_log_info"
	"github.com/etcdops/etcd/modules/etcd_run_state"
	"github.com/etcdops/etcd/modules/etcd_snapshot"
	"github.com/etcdops/etcd/modules/etcd_temp_member"
	"github.com/etcdops/etcd/modules/etcd_ttl_leases"
	"github.com/etcdops/etcd/modules/etcd_units"
	"github.com/etcdops/etcd/modules/etcd_v2_copy"
	"github.com/etcdops/etcd/modules/etcd_v2_migrate"
)

var modules = map[string]func(){
	"etcd_backup":            etcd_backup.Main,
	"etcd_cluster_info":      etcd_cluster_info.Main,
	"etcd_convergence_wait":  etcd_convergence_wait.Main,
	"etcd_force_new_cluster": etcd_force_new_cluster.Main,
	"etcd_master_config":     etcd_master_config.Main,
	"etcd_member":            etcd_member.Main,
	"etcd_member_config":     etcd_member_config.Main,
	"etcd_raft_log_info":     etcd_raft_log_info.Main,
	"etcd_run_state":         etcd_run_state.Main,
	"etcd_snapshot":          etcd_snapshot.Main,
	"etcd_temp_member":       etcd_temp_member.Main,
	"etcd_ttl_leases":        etcd_ttl_leases.Main,
	"etcd_units":             etcd_units.Main,
	"etcd_v2_copy":           etcd_v2_copy.Main,
	"etcd_v2_migrate":        etcd_v2_migrate.Main,
}

func main() {
	// Ansible names a binary module it copies to a host AnsiballZ_<module> (async tasks run that way).
	if run, ok := modules[strings.TrimPrefix(filepath.Base(os.Args[0]), "AnsiballZ_")]; ok {
		run()
		return
	}
	if len(os.Args) > 1 {
		if run, ok := modules[os.Args[1]]; ok {
			os.Args = append([]string{os.Args[1]}, os.Args[2:]...)
			run()
			return
		}
	}
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s MODULE [ARGS_FILE | --argspec]; MODULE is one of %s\n", filepath.Base(os.Args[0]), strings.Join(names, ", "))
	os.Exit(2)
}
