package modules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

// Through real Ansible: etcd.conf gets the join's settings as lineinfile wrote them (check mode
// first, nothing written; then for real, with a backup; then again, not changed); a CoreOS drop-in is
// read as ETCD_* settings and written as flags; a drop-in is created from a command; a StorageOS unit
// from a member's, with its EnvironmentFile; the etcd binary's version is read in the same call; bad input
// names the option and writes nothing.
func TestMemberConfigModule(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etcd.conf")
	orig := "# OpenShift\nETCD_NAME=etcd3\nETCD_INITIAL_CLUSTER=etcd3=https://10.0.0.3:2380\nETCD_DATA_DIR=/var/lib/etcd/"
	if err := os.WriteFile(conf, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	join := map[string]any{"path": conf, "state": "present", "settings": map[string]any{
		"ETCD_INITIAL_CLUSTER": "etcd1=https://10.0.0.1:2380,etcd3=https://10.0.0.3:2380", "ETCD_INITIAL_CLUSTER_STATE": "existing"}}
	check := ansibletest.Module(t, "etcd_member_config", join, ansibletest.Opts{Check: true, Diff: true})
	if b, _ := os.ReadFile(conf); check.Failed() || !check.Changed() || check["diff"] == nil || string(b) != orig {
		t.Fatalf("check mode: %v; file %q", check, b)
	}
	real := ansibletest.Module(t, "etcd_member_config", join, ansibletest.Opts{})
	want := "# OpenShift\nETCD_NAME=etcd3\nETCD_INITIAL_CLUSTER=etcd1=https://10.0.0.1:2380,etcd3=https://10.0.0.3:2380\n" +
		"ETCD_DATA_DIR=/var/lib/etcd/\nETCD_INITIAL_CLUSTER_STATE=existing\n"
	b, _ := os.ReadFile(conf)
	fi, _ := os.Stat(conf)
	backup, _ := real["backup_file"].(string)
	old, _ := os.ReadFile(backup)
	if real.Failed() || !real.Changed() || string(b) != want || fi.Mode().Perm() != 0o640 || string(old) != orig {
		t.Fatalf("write: %v\nfile %q (mode %v), want %q; backup %q", real, b, fi.Mode().Perm(), want, old)
	}
	if env, _ := real["env"].(map[string]any); env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" || env["ETCD_NAME"] != "etcd3" {
		t.Errorf("env: %v", real["env"])
	}
	if again := ansibletest.Module(t, "etcd_member_config", join, ansibletest.Opts{}); again.Failed() || again.Changed() {
		t.Fatalf("second write: %v", again)
	}

	dropIn := filepath.Join(dir, "etcd-member.service.d", "20-clct-etcd-member.conf")
	os.MkdirAll(filepath.Dir(dropIn), 0o755)
	seed := "[Service]\nExecStart=\nExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\\n  --name=\"demo-etcd-2\" \\\n" +
		"  --initial-cluster-state=\"new\"\n"
	if err := os.WriteFile(dropIn, []byte(seed), 0o644); err != nil {
		t.Fatal(err)
	}
	read := ansibletest.Module(t, "etcd_member_config", map[string]any{"flavour": "dropin", "path": dropIn}, ansibletest.Opts{})
	if env, _ := read["env"].(map[string]any); read.Failed() || read.Changed() || env["ETCD_NAME"] != "demo-etcd-2" ||
		read["command"] != "/usr/lib/coreos/etcd-wrapper $ETCD_OPTS" {
		t.Fatalf("read the drop-in: %v", read)
	}
	write := ansibletest.Module(t, "etcd_member_config", map[string]any{"flavour": "dropin", "path": dropIn, "state": "present",
		"daemon_reload": false, "settings": map[string]any{"ETCD_INITIAL_CLUSTER_STATE": "existing", "ETCD_ENABLE_V2": true}}, ansibletest.Opts{})
	b, _ = os.ReadFile(dropIn)
	if write.Failed() || !write.Changed() || write["daemon_reload"] != true ||
		!strings.Contains(string(b), "$ETCD_OPTS \\\n  --name=\"demo-etcd-2\" \\\n  --initial-cluster-state=existing \\\n  --enable-v2=true\n") {
		t.Fatalf("write the drop-in: %v\n%s", write, b)
	}

	fresh := filepath.Join(dir, "etcd.service.d", "20-clct-etcd-member.conf")
	created := ansibletest.Module(t, "etcd_member_config", map[string]any{"flavour": "dropin", "path": fresh, "state": "present",
		"daemon_reload": false, "command": "/usr/bin/etcd", "settings": map[string]any{"ETCD_NAME": "etcd4"}}, ansibletest.Opts{})
	if b, _ := os.ReadFile(fresh); created.Failed() || !created.Changed() || !strings.HasSuffix(string(b), "ExecStart=\nExecStart=/usr/bin/etcd \\\n  --name=etcd4\n") {
		t.Fatalf("create a drop-in: %v\n%s", created, b)
	}

	// Seed 003: a new StorageOS node's unit created from a member's, its node addresses written into
	// the unit's EnvironmentFile, the flags naming them; read back expanded; again, no change.
	envFile := filepath.Join(dir, "etc-etcd.conf")
	memberUnit := "[Service]\nType=notify\nEnvironmentFile=" + envFile + "\nExecStart=/usr/local/sbin/etcd3 --name etcd-${NODE_IP} \\\n" +
		"  --initial-cluster-state new \\\n  --advertise-client-urls http://${NODE_IP}:${CLIENT_PORT}\n"
	unitPath := filepath.Join(dir, "etcd3.service")
	joinUnit := map[string]any{"flavour": "unit", "path": unitPath, "state": "present", "daemon_reload": false,
		"unit_text":   memberUnit,
		"environment": map[string]any{"NODE_IP": "10.0.0.4", "NODE1_IP": "10.0.0.1", "NODE4_IP": "10.0.0.4", "CLIENT_PORT": 2379, "PEERS_PORT": 2380},
		"settings": map[string]any{"ETCD_INITIAL_CLUSTER": "etcd-10.0.0.1=http://10.0.0.1:2380,etcd-10.0.0.4=http://10.0.0.4:2380",
			"ETCD_INITIAL_CLUSTER_STATE": "existing", "ETCD_NAME": "etcd-10.0.0.4"}}
	unitRes := ansibletest.Module(t, "etcd_member_config", joinUnit, ansibletest.Opts{})
	b, _ = os.ReadFile(unitPath)
	e, _ := os.ReadFile(envFile)
	env, _ := unitRes["env"].(map[string]any)
	if unitRes.Failed() || !unitRes.Changed() || unitRes["env_file"] != envFile || env["ETCD_ADVERTISE_CLIENT_URLS"] != "http://10.0.0.4:2379" ||
		!strings.Contains(string(b), "  --name etcd-${NODE_IP} \\\n  --initial-cluster-state=existing \\\n") ||
		!strings.Contains(string(b), "--initial-cluster=etcd-${NODE1_IP}=http://${NODE1_IP}:${PEERS_PORT},etcd-${NODE4_IP}=http://${NODE4_IP}:${PEERS_PORT}\n") ||
		string(e) != "CLIENT_PORT=2379\nNODE1_IP=10.0.0.1\nNODE4_IP=10.0.0.4\nNODE_IP=10.0.0.4\nPEERS_PORT=2380\n" ||
		strings.Contains(fmt.Sprint(unitRes), "NODE1_IP") {
		t.Fatalf("create a unit: %v\n%s\n%s", unitRes, b, e)
	}
	if again := ansibletest.Module(t, "etcd_member_config", joinUnit, ansibletest.Opts{}); again.Failed() || again.Changed() {
		t.Fatalf("second write of the unit: %v", again)
	}

	for name, args := range map[string]map[string]any{
		"settings":    {"path": conf, "state": "present", "settings": map[string]any{"etcd_name": "x"}},
		"path":        {"path": "etcd.conf"},
		"environment": {"path": conf, "state": "present", "environment": map[string]any{"NODE_IP": "x"}},
		"unit":        {"path": conf, "unit": "../../../tmp/x"},
		"binary":      {"path": conf, "binary": "bin/etcd"},
	} {
		res := ansibletest.Module(t, "etcd_member_config", args, ansibletest.Opts{})
		if b, _ := os.ReadFile(conf); !res.Failed() || !strings.Contains(res.Msg(), name) || string(b) != want {
			t.Errorf("bad %s: %v (file now %q)", name, res, b)
		}
	}
	// The binary's version in the same call (etcd_facts): etcd 3.4 of the machine, "" for one that does not run.
	for binary, want := range map[string]string{"/usr/bin/etcd": "3.4.", "etcd": "3.4.", filepath.Join(dir, "no-etcd"): ""} {
		res := ansibletest.Module(t, "etcd_member_config", map[string]any{"path": conf, "binary": binary}, ansibletest.Opts{Check: true})
		if v, ok := res["version"].(string); res.Failed() || res.Changed() || !ok || !strings.HasPrefix(v, want) || want == "" && v != "" {
			t.Errorf("version of %s: %v, want %q…", binary, res, want)
		}
	}
	missing := ansibletest.Module(t, "etcd_member_config", map[string]any{"path": filepath.Join(dir, "none.conf")}, ansibletest.Opts{})
	if !missing.Failed() || !strings.Contains(missing.Msg(), "etcd_config_flavour") {
		t.Errorf("missing file: %v", missing)
	}
}
