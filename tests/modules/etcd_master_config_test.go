package modules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
)

const masterConfig = `# managed by openshift-ansible
controllerLeaseTTL: 30
etcdClientInfo:
  ca: master.etcd-ca.crt
  urls:
  - https://10.0.0.1:2379
kubernetesMasterConfig:
  apiServerArguments:
    storage-backend:
    - etcd2 # the v2 store
    storage-media-type:
    - application/json
oauthConfig:
  tokenConfig:
    accessTokenMaxAgeSeconds: 86400
`

// Through real Ansible: check mode with diff (changed, file untouched), switch (backup kept,
// comments kept), again (not changed), revert; etcd_urls (check, real, again); a missing file with a
// switch names the parameter.
func TestMasterConfigModule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master-config.yaml")
	if err := os.WriteFile(path, []byte(masterConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	args := map[string]any{"path": path, "storage_backend": "etcd3"}

	check := ansibletest.Module(t, "etcd_master_config", args, ansibletest.Opts{Check: true, Diff: true})
	if got, _ := os.ReadFile(path); check.Failed() || !check.Changed() || check["diff"] == nil || string(got) != masterConfig {
		t.Fatalf("check mode: %v", check)
	}

	real := ansibletest.Module(t, "etcd_master_config", args, ansibletest.Opts{})
	got, _ := os.ReadFile(path)
	if real.Failed() || !real.Changed() || !strings.Contains(string(got), "- etcd3 # the v2 store") ||
		!strings.Contains(string(got), "- application/vnd.kubernetes.protobuf") || !strings.HasPrefix(string(got), "# managed by openshift-ansible") {
		t.Fatalf("switch: %v\n%s", real, got)
	}
	if b, err := os.ReadFile(real["backup_file"].(string)); err != nil || string(b) != masterConfig {
		t.Fatalf("backup: %v", err)
	}
	if ttls := real["ttls"].(map[string]any); ttls["access_token_max_age_seconds"] != 86400.0 || ttls["authorize_token_max_age_seconds"] != nil {
		t.Fatalf("ttls: %v", ttls)
	}

	again := ansibletest.Module(t, "etcd_master_config", args, ansibletest.Opts{})
	if again.Failed() || again.Changed() {
		t.Fatalf("second run: %v", again)
	}

	revert := ansibletest.Module(t, "etcd_master_config", map[string]any{"path": path, "storage_backend": "etcd2"}, ansibletest.Opts{})
	got, _ = os.ReadFile(path)
	if revert.Failed() || !revert.Changed() || strings.Contains(string(got), "storage-") {
		t.Fatalf("revert: %v\n%s", revert, got)
	}

	urlArgs := map[string]any{"path": path, "etcd_urls": []string{"https://10.0.0.4:2379", "https://10.0.0.5:2379"}}
	checkURLs := ansibletest.Module(t, "etcd_master_config", urlArgs, ansibletest.Opts{Check: true})
	if got, _ = os.ReadFile(path); checkURLs.Failed() || !checkURLs.Changed() || strings.Contains(string(got), "10.0.0.4") {
		t.Fatalf("etcd_urls in check mode: %v\n%s", checkURLs, got)
	}
	urls := ansibletest.Module(t, "etcd_master_config", urlArgs, ansibletest.Opts{})
	got, _ = os.ReadFile(path)
	if urls.Failed() || !urls.Changed() || !strings.Contains(string(got), "etcdClientInfo:\n  ca: master.etcd-ca.crt\n  urls:\n  - https://10.0.0.4:2379\n  - https://10.0.0.5:2379\nkubernetesMasterConfig:") {
		t.Fatalf("etcd_urls: %v\n%s", urls, got)
	}
	if again := ansibletest.Module(t, "etcd_master_config", urlArgs, ansibletest.Opts{}); again.Failed() || again.Changed() {
		t.Fatalf("etcd_urls again: %v", again)
	}

	missing := ansibletest.Module(t, "etcd_master_config", map[string]any{"path": path + ".absent", "storage_backend": "etcd3"}, ansibletest.Opts{})
	if !missing.Failed() || !strings.Contains(missing.Msg(), "parameter path") {
		t.Fatalf("missing file: %v", missing)
	}

	// Issue 19: a file the switch would damage is refused and left as it was.
	for want, content := range map[string]string{
		"more than one YAML document":                      masterConfig + "---\nkind: Other\n",
		"apiServerArguments (line 2) is not a mapping":     "kubernetesMasterConfig:\n  apiServerArguments: storage-backend=etcd2\n",
		"has no kubernetesMasterConfig.apiServerArguments": "apiVersion: v1\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		res := ansibletest.Module(t, "etcd_master_config", args, ansibletest.Opts{})
		if got, _ := os.ReadFile(path); !res.Failed() || res.Changed() || !strings.Contains(res.Msg(), want) || string(got) != content {
			t.Errorf("%q: %v\n%s", want, res, got)
		}
	}
}
