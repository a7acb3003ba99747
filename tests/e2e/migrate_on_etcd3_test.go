package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A cluster whose masters already run on etcd3 and that this collection never migrated (openshift-ansible
// migrated it, or it was installed so): the rollback refuses rather than revert the masters to etcd2
// without a restore, and the migration reports "already on etcd3"; neither changes anything. Then the
// masters write v3 keys and the clean-up refuses too (checkCleanupRefusedOnEtcd3).
func TestEtcd3ConsumersWithoutRecordedMigration(t *testing.T) {
	l, _ := migrationLab(t, 300)
	step := stepLogger(t)
	mustSucceed(t, runTestdata(t, l, "fallback.yml", map[string]any{"fallback_backend": "etcd3"}))
	configs := func() [][]byte {
		var out [][]byte
		for _, h := range l.Members() {
			b, err := os.ReadFile(filepath.Join(h.Root(), "etc/origin/master/master-config.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	before := configs()
	unchanged := func(what string) {
		t.Helper()
		for i, b := range configs() {
			if !bytes.Equal(b, before[i]) {
				t.Errorf("%s changed master-config.yaml on %s", what, l.Members()[i].Name)
			}
		}
		for _, h := range l.Members() {
			if backend, _ := masterStorage(t, h); backend != "etcd3" {
				t.Errorf("%s: %s: storage-backend %q, want etcd3", what, h.Name, backend)
			}
			if out, err := l.Exec(h, "sh", "-c", "ls -d /var/lib/etcd/member.* 2>/dev/null || true"); err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("%s: %s: member dirs moved aside: %s %v", what, h.Name, out, err)
			}
		}
	}

	res := playbook(t, l, "rollback_migration.yml", nil)
	if res.Err == nil {
		t.Errorf("the rollback ran through with no migration recorded and the masters on etcd3")
	}
	msg := failureMsg(res)
	for _, want := range []string{"no migration is recorded", "no such file", "selects etcd3", "etcd_rollback_backup"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the refusal does not say %q: %q", want, msg)
		}
	}
	assertUntouched(t, l, res)
	unchanged("the refused rollback")
	step("rollback refused in %s: %s", res.Duration.Round(time.Second), msg)

	res = playbook(t, l, "migrate_v2_to_v3.yml", nil)
	mustSucceed(t, res)
	if s := summary(t, res); !strings.Contains(s, "Already on etcd3") || !strings.Contains(s, "nothing changed") {
		t.Errorf("summary %q, want already on etcd3, nothing changed", s)
	}
	assertUntouched(t, l, res)
	unchanged("the migration")
	step("migration reported already on etcd3 in %s", res.Duration.Round(time.Second))

	checkCleanupRefusedOnEtcd3(t, l)
}
