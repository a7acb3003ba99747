package e2e

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	"github.com/etcdops/etcd/lab"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// checkMigrationPredicted runs the migration with --check on a lab that is not migrated yet: it runs to its
// end, says it changed nothing, and nothing changed: no unit (re)started or stopped, the v2 data as seeded,
// no v3 key, no backup, no state file, the masters still on etcd2.
func checkMigrationPredicted(t *testing.T, l *lab.Lab, m *dataset.Manifest, extra map[string]any) {
	t.Helper()
	before := activations(t, l)
	res := runPlaybook(t, l, "migrate_v2_to_v3.yml", lab.Run{ExtraVars: extra, Check: true})
	mustSucceed(t, res)
	if s := summary(t, res); !strings.Contains(s, "Check mode: the") || !strings.Contains(s, "nothing changed") {
		t.Errorf("check mode's summary: %q", s)
	}
	if after := activations(t, l); after != before {
		t.Errorf("check mode started or stopped units:\nbefore %s\nafter  %s", before, after)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := l.Conn()
	v2, err := o.V2()
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := dataset.VerifyV2(ctx, clientv2.NewKeysAPI(v2), m); err != nil || !rep.OK(false) {
		t.Fatalf("v2 after check mode: %v %v", rep, err)
	}
	if resp, err := l.V3Client(t).Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("v3 after check mode: %v keys (%v), want none", resp, err)
	}
	if st := migrationState(t, l); st != nil {
		t.Errorf("check mode wrote the state file: %v", st)
	}
	for _, h := range l.Members() {
		if backups, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd-backup/pre-migration-*")); len(backups) > 0 {
			t.Errorf("%s: check mode took a backup: %v", h.Name, backups)
		}
		if backend, _ := masterStorage(t, h); backend != "etcd2" {
			t.Errorf("%s: master-config.yaml storage-backend %q after check mode", h.Name, backend)
		}
	}
}

// mustPredict runs the playbook with --check: it succeeds, its summary says want, and no data dir, unit or
// state file (stateFile, on the first etcd host: absent, or as it was) changed.
func mustPredict(t *testing.T, l *lab.Lab, name string, run lab.Run, want, stateFile string) {
	t.Helper()
	dirs, units, state := dataDirs(t, l), activations(t, l), readState(t, l, stateFile)
	run.Check = true
	res := runPlaybook(t, l, name, run)
	mustSucceed(t, res)
	if s := summary(t, res); !strings.Contains(s, want) {
		t.Errorf("%s --check: summary %q, want %q in it", name, s, want)
	}
	if after := dataDirs(t, l); after != dirs {
		t.Errorf("%s --check changed the data dirs:\nbefore %s\nafter  %s", name, dirs, after)
	}
	if after := activations(t, l); after != units {
		t.Errorf("%s --check started or stopped units:\nbefore %s\nafter  %s", name, units, after)
	}
	if st := readState(t, l, stateFile); !reflect.DeepEqual(st, state) {
		t.Errorf("%s --check wrote %s:\nbefore %v\nafter  %v", name, stateFile, state, st)
	}
}

// activations lists when etcd and every master unit of each host last became active, and whether they are.
func activations(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var b strings.Builder
	for _, h := range l.Members() {
		for _, unit := range append([]string{"etcd"}, lab.MasterServices...) {
			out, err := l.Exec(h, "systemctl", "show", "-p", "ActiveState,ActiveEnterTimestampMonotonic", "--value", unit)
			if err != nil {
				t.Fatalf("%s: systemctl show %s: %s %v", h.Name, unit, out, err)
			}
			b.WriteString(h.Name + " " + unit + " " + strings.Join(strings.Fields(string(out)), " ") + "; ")
		}
	}
	return b.String()
}
