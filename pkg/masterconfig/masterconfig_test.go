package masterconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

const sample = `# OpenShift master configuration (managed by openshift-ansible)
apiVersion: v1
controllerLeaseTTL: 30
kind: MasterConfig
kubernetesMasterConfig:
  # keep: API server flags
  apiServerArguments:
    event-ttl:
    - "1h" # events live an hour
  masterCount: 3
oauthConfig:
  tokenConfig:
    accessTokenMaxAgeSeconds: 86400
    authorizeTokenMaxAgeSeconds: 500
`

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "master-config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSwitchKeepsCommentsAndOrderAndBacksUp(t *testing.T) {
	p := write(t, sample)
	task := &module.Task{}
	r, err := Ensure(task, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)})
	if err != nil || !task.IsChanged() {
		t.Fatalf("changed=%v err=%v", task.IsChanged(), err)
	}
	got, _ := os.ReadFile(p)
	// Only the two arguments are added; every other line keeps its text and place.
	want := strings.Replace(sample, "    - \"1h\" # events live an hour\n",
		"    - \"1h\" # events live an hour\n    storage-backend:\n    - etcd3\n    storage-media-type:\n    - application/vnd.kubernetes.protobuf\n", 1)
	if string(got) != want {
		t.Fatalf("file after switch:\n%s\nwant:\n%s", got, want)
	}
	old, err := os.ReadFile(r.BackupFile)
	if err != nil || string(old) != sample {
		t.Fatalf("backup %s: %v\n%s", r.BackupFile, err, old)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode changed to %v", st.Mode().Perm())
	}
	if r.PreviousStorageBackend != "etcd2" || r.StorageBackend != "etcd3" {
		t.Fatalf("backends: %+v", r)
	}
	if *r.TTLs.AccessTokenMaxAgeSeconds != 86400 || *r.TTLs.AuthorizeTokenMaxAgeSeconds != 500 || *r.TTLs.ControllerLeaseTTL != 30 {
		t.Fatalf("ttls: %+v", r.TTLs)
	}
}

func TestSecondSwitchChangesNothing(t *testing.T) {
	p := write(t, sample)
	if _, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	task := &module.Task{}
	r, err := Ensure(task, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(1, 0)})
	after, _ := os.ReadFile(p)
	if err != nil || task.IsChanged() || r.BackupFile != "" || string(before) != string(after) {
		t.Fatalf("second run: changed=%v backup=%q err=%v", task.IsChanged(), r.BackupFile, err)
	}
}

func TestRevertRestoresOriginalText(t *testing.T) {
	p := write(t, sample)
	if _, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	r, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd2", Now: time.Unix(1, 0)})
	got, _ := os.ReadFile(p)
	if err != nil || string(got) != sample || r.StorageBackend != "etcd2" {
		t.Fatalf("revert: %v\n%s", err, got)
	}
}

func TestCheckModeWritesNothing(t *testing.T) {
	p := write(t, sample)
	task := &module.Task{CheckMode: true}
	r, err := Ensure(task, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)})
	got, _ := os.ReadFile(p)
	if err != nil || !task.IsChanged() || string(got) != sample || r.BackupFile != "" {
		t.Fatalf("check mode: changed=%v err=%v", task.IsChanged(), err)
	}
}

func TestMissingFileReadOnlyIsFineButSwitchNamesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.yaml")
	if r, err := Ensure(&module.Task{}, Spec{Path: p}); err != nil || r.Exists {
		t.Fatalf("read: %+v %v", r, err)
	}
	_, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3"})
	if err == nil || !strings.Contains(err.Error(), "parameter path") {
		t.Fatalf("switch on missing file: %v", err)
	}
}

func TestBadTTLNamesKeyAndChangesNothing(t *testing.T) {
	p := write(t, strings.Replace(sample, "controllerLeaseTTL: 30", "controllerLeaseTTL: soon", 1))
	_, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3"})
	got, _ := os.ReadFile(p)
	if err == nil || !strings.Contains(err.Error(), "controllerLeaseTTL") || strings.Contains(string(got), "etcd3") {
		t.Fatalf("err=%v", err)
	}
}

// Issue 19: a file the switch cannot edit in place is refused, naming the key or the extra document,
// in check mode and for real, and stays as it was (no backup either): kubernetesMasterConfig or
// apiServerArguments that is not a mapping (a duplicate key used to be appended on every run), a
// multi-document file (its later documents used to be lost), a file without the keys (they used to be
// added). A null apiServerArguments (the installer's "apiServerArguments: null") is switched.
func TestUneditableFilesAreRefused(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"kubernetesMasterConfig a string": {"kubernetesMasterConfig: nope\n", "kubernetesMasterConfig (line 1) is not a mapping"},
		"apiServerArguments a list":       {"kubernetesMasterConfig:\n  apiServerArguments:\n  - storage-backend=etcd2\n", "apiServerArguments (line 3) is not a mapping"},
		"two documents":                   {sample + "---\nkind: Other\n", "more than one YAML document"},
		"no kubernetesMasterConfig":       {"apiVersion: v1\nkind: MasterConfig\n", "has no kubernetesMasterConfig.apiServerArguments"},
		"no apiServerArguments":           {"kubernetesMasterConfig:\n  masterCount: 3\n", "has no kubernetesMasterConfig.apiServerArguments"},
	} {
		t.Run(name, func(t *testing.T) {
			p := write(t, tc.content)
			for _, check := range []bool{true, false} {
				task := &module.Task{CheckMode: check}
				_, err := Ensure(task, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)})
				if err == nil || !strings.Contains(err.Error(), tc.want) || task.IsChanged() {
					t.Fatalf("check=%v: changed=%v err=%v; want %q", check, task.IsChanged(), err, tc.want)
				}
			}
			if got, _ := os.ReadFile(p); string(got) != tc.content {
				t.Fatalf("file changed:\n%s", got)
			}
			if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
				t.Fatalf("files beside it: %v", entries)
			}
		})
	}
	p := write(t, "kubernetesMasterConfig:\n  apiServerArguments: null\n  masterCount: 3\n")
	if r, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)}); err != nil || r.StorageBackend != "etcd3" {
		t.Fatalf("null apiServerArguments: %+v %v", r, err)
	}
	got, _ := os.ReadFile(p)
	if want := "kubernetesMasterConfig:\n  apiServerArguments:\n    storage-backend:\n    - etcd3\n    storage-media-type:\n    - application/vnd.kubernetes.protobuf\n  masterCount: 3\n"; string(got) != want {
		t.Fatalf("null apiServerArguments switched to:\n%s", got)
	}
}

// etcd_urls replaces etcdClientInfo.urls (order kept as given, comments on the key kept); the same
// list again changes nothing; a file without etcdClientInfo is refused, unchanged.
func TestSetEtcdURLs(t *testing.T) {
	const withURLs = `etcdClientInfo:
  ca: master.etcd-ca.crt
  # the members
  urls:
  - https://10.0.0.1:2379
  - https://10.0.0.2:2379
kind: MasterConfig
`
	p := write(t, withURLs)
	urls := []string{"https://10.0.0.4:2379", "https://10.0.0.5:2379", "https://10.0.0.6:2379"}
	task := &module.Task{}
	r, err := Ensure(task, Spec{Path: p, EtcdURLs: urls, Now: time.Unix(0, 0)})
	if err != nil || !task.IsChanged() || strings.Join(r.PreviousEtcdURLs, ",") != "https://10.0.0.1:2379,https://10.0.0.2:2379" ||
		strings.Join(r.EtcdURLs, ",") != strings.Join(urls, ",") || r.StorageBackend != "etcd2" {
		t.Fatalf("set urls: changed=%v %+v %v", task.IsChanged(), r, err)
	}
	got, _ := os.ReadFile(p)
	want := "etcdClientInfo:\n  ca: master.etcd-ca.crt\n  # the members\n  urls:\n  - https://10.0.0.4:2379\n  - https://10.0.0.5:2379\n  - https://10.0.0.6:2379\nkind: MasterConfig\n"
	if string(got) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
	again := &module.Task{}
	if _, err := Ensure(again, Spec{Path: p, EtcdURLs: urls, Now: time.Unix(1, 0)}); err != nil || again.IsChanged() {
		t.Fatalf("again: changed=%v %v", again.IsChanged(), err)
	}

	bare := write(t, "kind: MasterConfig\n")
	if _, err := Ensure(&module.Task{}, Spec{Path: bare, EtcdURLs: urls[:1], Now: time.Unix(0, 0)}); err == nil ||
		!strings.Contains(err.Error(), "no etcdClientInfo mapping") {
		t.Fatalf("a file without etcdClientInfo: %v", err)
	}
	if got, _ := os.ReadFile(bare); string(got) != "kind: MasterConfig\n" {
		t.Fatalf("bare file changed:\n%s", got)
	}
}

// Two writes in the same second (a switch, then a rollback) keep both backups: the second gets a suffix
// instead of overwriting the first, which holds the original file.
func TestBackupsInTheSameSecondAreKept(t *testing.T) {
	p := write(t, sample)
	at := time.Unix(1700000000, 0)
	first, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3", Now: at})
	if err != nil {
		t.Fatal(err)
	}
	switched, _ := os.ReadFile(p)
	second, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd2", Now: at})
	if err != nil {
		t.Fatal(err)
	}
	if first.BackupFile == second.BackupFile || second.BackupFile != first.BackupFile+".1" {
		t.Fatalf("backups %q and %q, want the second named after the first with .1", first.BackupFile, second.BackupFile)
	}
	if b, _ := os.ReadFile(first.BackupFile); string(b) != sample {
		t.Fatalf("the first backup no longer holds the original file:\n%s", b)
	}
	if b, _ := os.ReadFile(second.BackupFile); string(b) != string(switched) {
		t.Fatalf("the second backup does not hold the switched file:\n%s", b)
	}
}
