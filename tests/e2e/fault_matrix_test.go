package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	"github.com/etcdops/etcd/pkg/backup"
)

// The fault matrix (issue 19): a playbook killed with SIGKILL at the start of a task (nothing of that
// task runs, nor any rescue, always or handler, as when the control node dies) and re-run with the same
// command must finish the job, proven by the playbook's own outcome checks on a fresh lab per boundary.
// `make soak` runs every boundary (TestSoakFaultMatrix*); make test runs a fixed sample of three.

// faultMatrix is one playbook's matrix.
type faultMatrix struct {
	playbook string
	extra    map[string]any
	// fresh brings up a lab in the state the playbook starts from and returns it with the check of
	// the finished job (keys, members, consumers, leftovers), which also checks an uninterrupted run.
	fresh func(t *testing.T) (*lab.Lab, func(t *testing.T, l *lab.Lab))
	// writeThrough, for a playbook that keeps quorum, names the hosts through which a writer puts keys
	// during all the runs on a lab, outside Ansible as an application would: no write may fail, and
	// every acknowledged one is read back at the end.
	writeThrough func(l *lab.Lab) []*lab.Host
	// predict, when set, runs the playbook with --check right after the kill (mustPredict): it runs to
	// its end on the state the kill left, its summary saying predict.want, and changes nothing.
	predict *prediction
}

// prediction is what check mode must say (want, in its summary) and the state file it must leave as it was.
type prediction struct{ want, stateFile string }

// boundaries runs the playbook once uninterrupted on a fresh lab, checks its outcome, and returns
// every task boundary in run order (Result.Boundaries).
func (fm faultMatrix) boundaries(t *testing.T) []lab.Kill {
	l, check := fm.fresh(t)
	w := fm.startWriter(t, l)
	res := runPlaybook(t, l, fm.playbook, lab.Run{ExtraVars: fm.extra})
	mustSucceed(t, res)
	check(t, l)
	fm.checkWrites(t, l, w)
	out := res.Boundaries()
	t.Logf("%s: %d task boundaries, uninterrupted run %s", fm.playbook, len(out), res.Duration.Round(time.Second))
	for i, k := range out {
		t.Logf("%03d %s #%d", i, k.Task, k.Nth)
	}
	return out
}

// killAt brings up a fresh lab, runs the playbook killed at k, then re-runs the same command (killed
// again at each of then, when the re-run reaches it) until a run ends, which must have finished the job.
func (fm faultMatrix) killAt(t *testing.T, k lab.Kill, then ...lab.Kill) {
	start := time.Now()
	l, check := fm.fresh(t)
	ready := time.Since(start)
	w := fm.startWriter(t, l)
	killedRun(t, l, fm.playbook, fm.extra, k)
	if fm.predict != nil {
		mustPredict(t, l, fm.playbook, lab.Run{ExtraVars: fm.extra}, fm.predict.want, fm.predict.stateFile)
	}
	res := fm.rerun(t, l, then)
	mustSucceed(t, res)
	check(t, l)
	fm.checkWrites(t, l, w)
	t.Logf("killed at %s #%d, re-run finished the job: lab ready in %s, %s in all", k.Task, k.Nth,
		ready.Round(time.Second), time.Since(start).Round(time.Second))
}

// rerun re-runs the playbook, killed again at each of then that a run reaches, and returns the run that
// ended.
func (fm faultMatrix) rerun(t *testing.T, l *lab.Lab, then []lab.Kill) *lab.Result {
	for _, k := range then {
		res := runPlaybook(t, l, fm.playbook, lab.Run{ExtraVars: fm.extra, KillAt: k})
		if !res.Killed {
			t.Logf("the re-run ended before %s #%d", k.Task, k.Nth)
			return res
		}
	}
	return runPlaybook(t, l, fm.playbook, lab.Run{ExtraVars: fm.extra})
}

// startWriter starts the matrix's writer on the lab (nil when the playbook does not keep quorum).
func (fm faultMatrix) startWriter(t *testing.T, l *lab.Lab) *writer {
	if fm.writeThrough == nil {
		return nil
	}
	return startWriter(t, l, fm.writeThrough(l))
}

// checkWrites stops the writer and asserts that no write failed and that every acknowledged one is
// held by the cluster (read through every host of the lab: the client finds the live members).
func (fm faultMatrix) checkWrites(t *testing.T, l *lab.Lab, w *writer) {
	t.Helper()
	if w == nil {
		return
	}
	w.stop()
	if len(w.failed) > 0 {
		t.Errorf("%d writes failed: %v", len(w.failed), w.failed[:min(len(w.failed), 5)])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	checkKeys(ctx, t, l.V3Client(t, l.Hosts...), w.acked, "written during the runs")
	t.Logf("writer: %d writes acknowledged and read back, %d failed, %s, longest %s", len(w.acked), len(w.failed),
		w.retries(), w.longest.Round(time.Millisecond))
}

// matrixKeys is the v2 dataset of the matrix's migration labs: small (a lab per boundary) but with
// every kind the checks cover (hidden keys, TTL keys and directories, empty directories).
const matrixKeys = 300

var migrateOfflineMatrix = migrateMatrix("offline", matrixKeys)

// migrateMatrix is the migration's matrix in one mode: on a lab of n seeded v2 keys, the
// finished job is every key in v3, the consumers on etcd3, the state complete, the backups verifying.
func migrateMatrix(mode string, n int) faultMatrix {
	return faultMatrix{
		playbook: "migrate_v2_to_v3.yml",
		extra:    map[string]any{"etcd_migration_mode": mode},
		fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
			l, m := migrationLab(t, n)
			return l, func(t *testing.T, l *lab.Lab) {
				t.Helper()
				checkMigrated(t, l, m)
				if st := migrationState(t, l); st["status"] != "complete" || st["mode"] != mode {
					t.Errorf("state file: %v", st)
				}
				checkNoLeftovers(t, l, "pre-migration-*")
			}
		},
	}
}

// The rollback of a finished offline migration: the original v2 data served again, v3 pristine.
var rollbackMatrix = faultMatrix{
	playbook: "rollback_migration.yml",
	fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
		l, m := migrationLab(t, matrixKeys)
		mustSucceed(t, playbook(t, l, "migrate_v2_to_v3.yml", nil))
		return l, func(t *testing.T, l *lab.Lab) {
			t.Helper()
			checkRolledBack(t, l, m)
			checkNoLeftovers(t, l, "")
		}
	},
}

// recover_member.yml for etcd3, crash-looping on corrupt data: back as a healthy voter with every key.
var recoverMemberMatrix = faultMatrix{
	playbook:     "recover_member.yml",
	extra:        map[string]any{"etcd_recover_member": "etcd3"},
	writeThrough: (*lab.Lab).Members,
	fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
		l := lab.Up(t, lab.Spec{Hosts: 3})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		keys := map[string]string{}
		putKeys(ctx, t, l.V3Client(t, l.Members()[0]), keys, 200, "/recover/before")
		etcd3 := l.Members()[2]
		if _, err := l.CorruptDataDir(etcd3); err != nil {
			t.Fatal(err)
		}
		_, _ = l.Exec(etcd3, "systemctl", "start", "etcd") // fails on the corrupt data and loops
		return l, func(t *testing.T, l *lab.Lab) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			checkRecovered(ctx, t, l, keys)
			if st := readState(t, l, "recover-member-state.json"); st != nil {
				t.Errorf("the state file was not set aside: %v", st)
			}
			checkNoLeftovers(t, l, "")
		}
	},
}

// replace_nodes.yml from three members onto the three new_etcd hosts: every key on the new members,
// the old ones stopped with their member dirs aside, the masters on the new client URLs.
var replaceNodesMatrix = faultMatrix{
	playbook:     "replace_nodes.yml",
	writeThrough: func(l *lab.Lab) []*lab.Host { return l.Hosts },
	fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
		l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true, Groups: map[string]int{"new_etcd": 3}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		old, fresh := l.Members(), freshHosts(l)
		before := map[string]string{}
		putKeys(ctx, t, l.V3Client(t, old...), before, 300, "/replace/before")
		return l, func(t *testing.T, l *lab.Lab) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cli := l.V3Client(t, fresh...)
			checkKeys(ctx, t, cli, before, "pre-existing")
			checkReplaced(ctx, t, l, cli, old, fresh)
		}
	},
}

// checkNoLeftovers asserts what any finished run leaves: on every member no temporary etcd unit
// running and every backup named by the glob (under /var/lib/etcd-backup, interrupted ones aside) verifying
// against its manifest (no backup check when backups is empty). (checkMigrated covers force-new-cluster drop-ins,
// runPlaybook the run lock.)
func checkNoLeftovers(t *testing.T, l *lab.Lab, backups string) {
	t.Helper()
	for _, h := range l.Members() {
		if out, _ := l.Exec(h, "sh", "-c", "systemctl list-units --all --plain --no-legend 'etcd*' | grep -v '^etcd.service'"); strings.TrimSpace(string(out)) != "" {
			t.Errorf("%s: a temporary etcd unit is left: %s", h.Name, out)
		}
		if backups == "" {
			continue
		}
		dirs, err := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd-backup", backups))
		if err != nil {
			t.Error(err)
		}
		verified := 0
		for _, d := range dirs {
			if strings.Contains(d, ".partial-") || strings.Contains(d, ".incomplete-") {
				continue // an interrupted backup, kept aside by design and never read as one
			}
			if _, err := backup.Verify(d); err != nil {
				t.Errorf("%s: backup %s does not verify: %v", h.Name, d, err)
			}
			verified++
		}
		if verified == 0 {
			t.Errorf("%s: no backup %s", h.Name, backups)
		}
	}
}

// make test's sample: two boundaries (a kill costs a whole lab and two runs, and make test must stay within
// 60 minutes on 2 cores); make soak runs all of them. With etcd stopped after the backup, before step
// 5's etcd_v2_migrate (a re-run restores the backup and resumes); near the end: the cluster rebuilt with
// leases, the consumers switched but stopped, after the transfer rebuild (so make test runs it: the default
// is local). Check mode runs on each state the kill left before the re-run. (make soak's
// TestSoakMigrateInterruptedThenResumed fails a run right after etcdctl migrate.)
var migrateOfflineSample = []struct {
	kill    lab.Kill
	rebuild string
}{
	{lab.Kill{Task: transformTask, Nth: 1}, "local"},
	{lab.Kill{Task: "Step 11: start the master services", Nth: 1}, "transfer"},
}

func TestFaultMatrixMigrateOfflineSample(t *testing.T) {
	for _, c := range migrateOfflineSample {
		fm := migrateOfflineMatrix
		fm.predict = &prediction{"Check mode: the offline migration would resume", "migration-state.json"}
		fm.extra = map[string]any{"etcd_migration_mode": "offline", "etcd_v2v3_migrate_rebuild": c.rebuild}
		t.Run(c.kill.Task, func(t *testing.T) {
			t.Parallel()
			fm.killAt(t, c.kill)
		})
	}
}

// Every boundary of the offline migration; each re-run is killed again half-way to the end before
// the last re-run (a second interruption).
func TestSoakFaultMatrixMigrateOffline(t *testing.T) {
	soak(t)
	migrateOfflineMatrix.all(t)
}

func TestSoakFaultMatrixMigrateOnline(t *testing.T) {
	soak(t)
	migrateMatrix("online", matrixKeys).all(t)
}

func TestSoakFaultMatrixRollback(t *testing.T) {
	soak(t)
	rollbackMatrix.all(t)
}

func TestSoakFaultMatrixRecoverMember(t *testing.T) {
	soak(t)
	recoverMemberMatrix.all(t)
}

func TestSoakFaultMatrixReplaceNodes(t *testing.T) {
	soak(t)
	replaceNodesMatrix.all(t)
}

// scale_cluster.yml from three members to five (group etcd = the three and both spares, one learner at a
// time): every key on five healthy voters, the state file set aside.
var scaleClusterMatrix = faultMatrix{
	playbook:     "scale_cluster.yml",
	writeThrough: (*lab.Lab).Members,
	fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
		l := lab.Up(t, lab.Spec{Hosts: 3, Groups: map[string]int{"spare": 2}})
		l.Inventory = etcdInventory(t, l, l.Hosts)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		before := map[string]string{}
		putKeys(ctx, t, l.V3Client(t, l.Members()...), before, 300, "/scale/before")
		return l, func(t *testing.T, l *lab.Lab) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cli := l.V3Client(t, l.Hosts...)
			checkKeys(ctx, t, cli, before, "pre-existing")
			checkMembers(ctx, t, l, cli, l.Hosts)
			if st := readStateOn(t, l.Hosts[0], "scale-cluster-state.json"); st != nil {
				t.Errorf("the state file was not set aside: %v", st)
			}
		}
	},
}

func TestSoakFaultMatrixScaleCluster(t *testing.T) {
	soak(t)
	scaleClusterMatrix.all(t)
}

// The clean-up of a failed migration (seed 000) and the restore from one snapshot, at every boundary, on
// the labs and with the checks of their module-kill cases.
func TestSoakFaultMatrixCleanup(t *testing.T) {
	soak(t)
	cleanupBackupKill.fm.all(t)
}

func TestSoakFaultMatrixRestore(t *testing.T) {
	soak(t)
	restoreMatrix(matrixKeys, nil).all(t)
}

// all runs the whole matrix: the uninterrupted run (its lab gone before the others start), then each
// boundary, two labs at once on two cores (-parallel), its re-run killed again half-way to the end.
// A boundary's subtest is named by its position and task ("017_etcdops.etcd.etcd_backup_:_Stop_etcd,…"),
// so -run selects a slice by either, with the uninterrupted run that finds them:
// 'TestSoakFaultMatrixMigrateOffline/(uninterrupted|.*etcd_backup)'.
func (fm faultMatrix) all(t *testing.T) {
	var all []lab.Kill
	if t.Run("uninterrupted", func(t *testing.T) { all = fm.boundaries(t) }); all == nil && !t.Failed() {
		t.Fatal("-run filtered out the uninterrupted run, which finds the boundaries: add it to the pattern, " +
			"e.g. 'TestSoakFaultMatrixMigrateOffline/(uninterrupted|^01.)'")
	}
	for i, k := range all {
		second := all[i+(len(all)-i)/2]
		t.Run(fmt.Sprintf("%03d %s #%d", i, strings.ReplaceAll(k.Task, "/", "-"), k.Nth), func(t *testing.T) {
			t.Parallel()
			fm.killAt(t, k, second)
		})
	}
}
