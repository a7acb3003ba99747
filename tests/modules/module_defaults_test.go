package modules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	"go.yaml.in/yaml/v3"
)

// The playbooks state the connection once per play, as module_defaults for the action group
// group/etcdops.etcd.etcd (meta/runtime.yml). This proves, on the installed ansible-core, that those
// defaults reach the binary modules, that a task's own option wins over them, and that a task of a
// module outside the group is not handed them.
func TestModuleDefaultsReachBinaryModules(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	conn := c.Args()
	play := []map[string]any{{
		"hosts": "localhost", "gather_facts": false, "connection": "local",
		"module_defaults": map[string]any{"group/etcdops.etcd.etcd": conn},
		"tasks": []any{
			map[string]any{"name": "info", "etcdops.etcd.etcd_cluster_info": nil},
			map[string]any{"name": "converged", "etcdops.etcd.etcd_convergence_wait": map[string]any{
				"require_healthy": true, "timeout": "60s"}},
			map[string]any{"name": "member", "etcdops.etcd.etcd_member": map[string]any{
				"name": c.Members[0].Name, "peer_urls": []string{c.Members[0].PeerURL}, "learner": false}},
			map[string]any{"name": "leases", "etcdops.etcd.etcd_ttl_leases": nil, "check_mode": true},
			map[string]any{"name": "override", "ignore_errors": true, "etcdops.etcd.etcd_cluster_info": map[string]any{
				"endpoints": []string{"https://127.0.0.1:1"}, "dial_timeout": "1s"}},
			map[string]any{"name": "outside", "etcdops.etcd.etcd_master_config": map[string]any{
				"path": filepath.Join(t.TempDir(), "absent.yaml")}, "ignore_errors": true},
		},
	}}
	path := filepath.Join(t.TempDir(), "play.yml")
	b, _ := json.Marshal(play)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	results := map[string]ansibletest.Result{}
	for _, task := range ansibletest.Playbook(t, path, "localhost,", nil, nil) {
		results[task.Name] = task.Hosts["localhost"]
	}

	for _, name := range []string{"info", "converged", "member", "leases"} {
		if r := results[name]; r == nil || r.Failed() {
			t.Fatalf("%s: the group's defaults did not reach it: %v", name, r)
		}
	}
	var info clusterInfoResult
	results["info"].Decode(t, &info)
	if len(info.Members) != 3 || !info.AllHealthy {
		t.Errorf("info through the defaults: %d members, healthy %v", len(info.Members), info.AllHealthy)
	}
	if results["member"].Changed() {
		t.Errorf("member: an existing member through the defaults reported a change: %v", results["member"])
	}
	if r := results["override"]; !r.Failed() || !strings.Contains(r.Msg(), "127.0.0.1:1") {
		t.Errorf("a task's own endpoints must win over the defaults: %v", r)
	}
	// etcd_master_config has no connection options: handed the defaults, it would refuse them as
	// unsupported; it fails only for the absent file.
	if r := results["outside"]; strings.Contains(r.Msg(), "endpoints") || strings.Contains(r.Msg(), "unsupported") {
		t.Errorf("a module outside the group was handed the defaults: %s", r.Msg())
	}
}

// The action group lists exactly the modules that take the connection options (their docs extend
// the connection fragment), so module_defaults never hand options to a module that refuses them.
func TestActionGroupIsTheConnectionModules(t *testing.T) {
	root := ansibletest.Root(t)
	var runtime struct {
		ActionGroups map[string][]string `yaml:"action_groups"`
	}
	b, err := os.ReadFile(filepath.Join(root, "meta", "runtime.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &runtime); err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "plugins", "modules", "*.yml"))
	var want []string
	for _, path := range docs {
		var sidecar struct {
			Documentation struct {
				Extends []string `yaml:"extends_documentation_fragment"`
			} `yaml:"DOCUMENTATION"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &sidecar); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, f := range sidecar.Documentation.Extends {
			if f == "etcdops.etcd.connection" {
				want = append(want, strings.TrimSuffix(filepath.Base(path), ".yml"))
			}
		}
	}
	got := append([]string(nil), runtime.ActionGroups["etcd"]...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("action group etcd is %v; the modules with the connection options are %v", got, want)
	}
}
