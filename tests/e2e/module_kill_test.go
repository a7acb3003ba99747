package e2e

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etcdops/etcd/lab"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Kill-anywhere, mid-task (issue 19): the module process of a long task is SIGKILLed on its host while
// it works (lab.ModuleKill), Ansible sees the task fail, and the same command run again unchanged
// must finish the job, proven by the playbook's outcome checks (faultMatrix.fresh).

// moduleKill is one scenario: a matrix (playbook, fresh lab, check) and the kill on its lab.
type moduleKill struct {
	fm   faultMatrix
	kill func(t *testing.T, l *lab.Lab) lab.ModuleKill
	// after, when set, checks the lab right after the killed run (the kill really was mid-work).
	after func(t *testing.T, l *lab.Lab)
	// at, when set, is a hook on the killed run (a fault set up as the task starts, so the module waits).
	at func(t *testing.T, l *lab.Lab) *lab.TaskHook
}

func (mk moduleKill) run(t *testing.T) {
	start := time.Now()
	l, check := mk.fm.fresh(t)
	ready := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	k := mk.kill(t, l)
	run := lab.Run{ExtraVars: mk.fm.extra}
	if mk.at != nil {
		run.Progress = mk.at(t, l)
	}
	res, err := l.PlaybookKillingModule(ctx, collectionRun(t, mk.fm.playbook, run), k)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil {
		t.Fatalf("%s on %s was killed during %q, yet the run succeeded", k.Module, k.Host.Name, k.Task)
	}
	t.Logf("killed %s during %q; the run failed: %s", k.Module, k.Task, res.Failures())
	if mk.after != nil {
		mk.after(t, l)
	}
	again := runPlaybook(t, l, mk.fm.playbook, lab.Run{ExtraVars: mk.fm.extra})
	mustSucceed(t, again)
	check(t, l)
	logIdleLeases(t, l)
	t.Logf("killed %s mid-task, re-run finished the job: lab ready in %s, re-run %s, %s in all", k.Module,
		ready.Round(time.Second), again.Duration.Round(time.Second), time.Since(start).Round(time.Second))
}

// v3Count is the number of keys in the v3 keyspace (-1: unreadable).
func v3Count(cli *clientv3.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return resp.Count
}

// logIdleLeases reports the leases no key uses: granted by a killed copy for puts that never landed,
// they are left to expire at their TTL (a lease with no key cannot be told from another client's lease
// about to be used, so nothing revokes it).
func logIdleLeases(t *testing.T, l *lab.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := l.V3Client(t, l.Hosts...) // every etcd host: a replacement leaves the old members stopped
	resp, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle := 0
	var longest int64
	for _, ls := range resp.Leases {
		ttl, err := cli.TimeToLive(ctx, ls.ID, clientv3.WithAttachedKeys())
		if err == nil && len(ttl.Keys) == 0 {
			idle++
			longest = max(longest, ttl.TTL)
		}
	}
	t.Logf("%d leases, %d idle (expiring within %ds)", len(resp.Leases), idle, longest)
}

// copyKeys is the size of the online copy scenario's dataset: enough transactions that a kill after
// the first ones leaves part of the keyspace uncopied.
const copyKeys = 2000

// The online migration's etcd_v2_copy is killed as soon as its first keys are in v3.

// slowCopy makes the migration's copy write one key per transaction, one at a time: on a quiet machine
// the batched copy of 2000 keys can finish between the first key landing and the kill (CI saw it).
func slowCopy(fm faultMatrix) faultMatrix {
	fm.extra = maps.Clone(fm.extra)
	fm.extra["etcd_v2v3_migrate_copy_concurrency"] = 1
	fm.extra["etcd_v2v3_migrate_copy_max_txn_ops"] = 1
	return fm
}

var onlineCopyKill = moduleKill{
	fm: slowCopy(migrateMatrix("online", copyKeys)),
	kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
		cli := l.V3Client(t)
		return lab.ModuleKill{
			Task: "etcdops.etcd.etcd_v2v3_migrate : Copy the v2 keyspace into v3 on the running cluster (with leases, verified)",
			Host: l.Members()[0], Module: "etcd_v2_copy",
			Ready: func() bool { return v3Count(cli) > 0 },
		}
	},
	after: func(t *testing.T, l *lab.Lab) {
		// On a quiet machine the copy gets far before the kill lands: any key left to copy proves it
		// was cut short.
		if n := v3Count(l.V3Client(t)); n >= copyKeys {
			t.Fatalf("%d keys in v3 after the kill: the copy was not cut short", n)
		} else {
			t.Logf("%d keys in v3 after the kill", n)
		}
	},
}

// make test's sample: the online migration's copy killed mid-copy (a partial v3 keyspace with leases
// must not pass for a migrated one; the re-run copies and verifies it all).
func TestModuleKillOnlineCopy(t *testing.T) { onlineCopyKill.run(t) }

// The migration's backup (step 2) killed on the first member while it copies the member dir with etcd
// stopped: the half-written backup must never pass for a complete one, and the member must serve again.
var backupKill = moduleKill{
	fm: migrateOfflineMatrix,
	kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
		h := l.Members()[0]
		return lab.ModuleKill{
			Task: "etcdops.etcd.etcd_backup : Back up this member (v3 snapshot and data dir copy, both verified)",
			Host: h, Module: "etcd_backup",
			Ready: func() bool { // the member dir copy has begun (etcd is stopped for it)
				m, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd-backup/*.partial-*/member"))
				return len(m) > 0
			},
		}
	},
	after: func(t *testing.T, l *lab.Lab) {
		m, _ := filepath.Glob(filepath.Join(l.Members()[0].Root(), "var/lib/etcd-backup/*.partial-*"))
		if len(m) == 0 {
			t.Fatal("no partial backup after the kill: the backup was not cut short")
		}
		t.Logf("left by the kill: %v", m)
	},
}

// The clean-up's backup (step 1, seed 000) killed as backupKill is: its preflight must start the member
// again (etcd_backup tasks_from: lingering) and the re-run clean up with every v2 key kept.
var cleanupBackupKill = moduleKill{
	fm: faultMatrix{
		playbook: "cleanup_failed_migration.yml",
		fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
			l, m := migrationLab(t, matrixKeys)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			want, kapi := failedMigration(ctx, t, l, m)
			return l, func(t *testing.T, l *lab.Lab) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				checkCleanedUp(ctx, t, l, kapi, want)
				checkNoLeftovers(t, l, "pre-cleanup-*")
			}
		},
	},
	kill:  backupKill.kill,
	after: backupKill.after,
}

// The offline migration's copy of the hidden v2 keys and the leases onto the started cluster, which only
// follows etcd_v2v3_migrate_command (the seed's etcdctl migrate; etcd_v2_migrate writes both itself).
var offlineCopyKill = moduleKill{
	fm: func() faultMatrix {
		fm := migrateOfflineMatrix
		fm.extra = map[string]any{"etcd_migration_mode": "offline", "etcd_v2v3_migrate_rebuild": "transfer",
			"etcd_v2v3_migrate_command": "etcdctl migrate --data-dir=/var/lib/etcd"}
		return fm
	}(),
	kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
		return lab.ModuleKill{
			Task: "etcdops.etcd.etcd_v2v3_migrate : Copy what `etcdctl migrate` leaves out (hidden v2 keys, leases) into v3",
			Host: l.Members()[0], Module: "etcd_v2_copy",
		}
	},
}

// replace_nodes.yml's promotion of the first new member killed while etcd_member waits for the learner to
// catch up: the learner's etcd is paused (SIGSTOP) as the promotion starts and keys are written past it, so
// the leader refuses to promote it until it resumes. The re-run must promote it (no learner left behind)
// and finish the replacement with every key, those written during the pause too.
var promoteKill = func() moduleKill {
	keys := map[string]string{}
	var written atomic.Bool
	return moduleKill{
		fm: faultMatrix{
			playbook: replaceNodesMatrix.playbook,
			fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
				l, check := replaceNodesMatrix.fresh(t)
				return l, func(t *testing.T, l *lab.Lab) {
					t.Helper()
					check(t, l)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
					defer cancel()
					checkKeys(ctx, t, l.V3Client(t, freshHosts(l)...), keys, "written while the learner lagged")
				}
			},
		},
		at: func(t *testing.T, l *lab.Lab) *lab.TaskHook {
			learner := freshHosts(l)[0]
			return lab.AtTask(promoteTask(l), 1, func() {
				if out, err := l.Exec(learner, "systemctl", "kill", "--kill-whom=main", "-s", "STOP", "etcd"); err != nil {
					t.Errorf("%s: pausing etcd: %s %v", learner.Name, out, err)
				}
				// etcd promotes a learner only within 10% of the leader's commit index: writers in
				// parallel get it that far behind before the module's request lands.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cli := l.V3Client(t, l.Members()...)
				putParallel(ctx, t, cli, keys, 8, 100, "/replace/lagging")
				written.Store(true)
			})
		},
		kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
			return lab.ModuleKill{
				Task: promoteTask(l), Host: l.Members()[0], Module: "etcd_member",
				Ready: written.Load, // the learner lags: the promotion is refused until it catches up
			}
		},
		after: func(t *testing.T, l *lab.Lab) {
			learner := freshHosts(l)[0]
			// Still a learner: the kill landed while etcd_member waited for it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			list, err := l.V3Client(t, l.Members()...).MemberList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			learners := 0
			for _, m := range list.Members {
				if m.IsLearner {
					learners++
				}
			}
			if learners != 1 {
				t.Fatalf("%d learners after the kill, want %s still one: the promotion did not wait", learners, learner.Name)
			}
			if out, err := l.Exec(learner, "systemctl", "kill", "--kill-whom=main", "-s", "CONT", "etcd"); err != nil {
				t.Fatalf("%s: resuming etcd: %s %v", learner.Name, out, err)
			}
		},
	}
}()

// restoreMatrix is restore_from_snapshot.yml on a lab of n v3 keys whose other members' data dirs are
// corrupt (as in TestRestoreFromSnapshot), so the first member alone answers. Its check: every key with its
// value, three healthy voters, the state file complete, no temporary unit or partial restore left, then more.
func restoreMatrix(n int, more func(t *testing.T, l *lab.Lab)) faultMatrix {
	return faultMatrix{
		playbook: "restore_from_snapshot.yml",
		fresh: func(t *testing.T) (*lab.Lab, func(*testing.T, *lab.Lab)) {
			l := lab.Up(t, lab.Spec{Hosts: 3, Masters: true})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if _, err := l.SeedV3(ctx, n, 1); err != nil {
				t.Fatal(err)
			}
			want, _ := v3Keys(ctx, t, l.V3Client(t))
			for _, h := range l.Members()[1:] {
				if _, err := l.CorruptDataDir(h); err != nil {
					t.Fatal(err)
				}
			}
			return l, func(t *testing.T, l *lab.Lab) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cli := l.V3Client(t)
				got, _ := v3Keys(ctx, t, cli)
				checkSameKeys(t, want, got)
				if st := readState(t, l, "restore-state.json"); st["status"] != "complete" {
					t.Errorf("state file: %v", st)
				}
				checkRebuilt(ctx, t, l, cli, "/var/lib/etcd/member.pre-restore-*", l.Members())
				checkNoLeftovers(t, l, "")
				for _, h := range l.Members() {
					if m, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd/.etcd-snapshot-restore*")); len(m) > 0 {
						t.Errorf("%s: a partial restore is left: %v", h.Name, m)
					}
				}
				if more != nil {
					more(t, l)
				}
			}
		},
	}
}

// restore_from_snapshot.yml's etcd_snapshot killed on the first member while it restores the snapshot into
// its temporary dir: the re-run must restore every member from the recorded snapshot.
var restoreKill = moduleKill{
	fm: restoreMatrix(5000, nil),
	kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
		h := l.Members()[0]
		return lab.ModuleKill{
			Task: "etcdops.etcd.etcd_restore : Restore every member from the snapshot (the old member dir moved aside, timestamped)",
			Host: h, Module: "etcd_snapshot",
			Ready: func() bool { // the restore into the temporary dir has begun
				_, err := os.Stat(filepath.Join(h.Root(), "var/lib/etcd/.etcd-snapshot-restore"))
				return err == nil
			},
		}
	},
}

// saveKeys is the size of the snapshot-save scenario's dataset: about 60 MB of snapshot, so the download is
// well under way, not over, when the kill lands.
const saveKeys = 15000

// snapshotDownloads lists the temporary files of etcd_snapshot's saves in a host's snapshot directory.
func snapshotDownloads(h *lab.Host) []string {
	m, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd-restore/*.etcd-snapshot-partial*"))
	return m
}

// restore_from_snapshot.yml's save of a fresh snapshot of the member that answers (no file given), killed
// mid-download: the killed run leaves a partial download and no snapshot; the re-run (a new snapshot name)
// must never restore from the partial file, remove it, and restore from a complete snapshot.
var snapshotSaveKill = func() moduleKill {
	var partial atomic.Int64 // the killed download's size
	return moduleKill{
		fm: restoreMatrix(saveKeys, func(t *testing.T, l *lab.Lab) {
			for _, h := range l.Members() {
				if m := snapshotDownloads(h); len(m) > 0 {
					t.Errorf("%s: a partial snapshot download is left: %v", h.Name, m)
				}
			}
			st := readState(t, l, "restore-state.json")
			snap, _ := st["snapshot"].(map[string]any)
			size, _ := snap["size"].(float64)
			if int64(size) <= partial.Load() {
				t.Errorf("restored from %v (%v bytes): not larger than the killed download (%d bytes)", snap["name"], size, partial.Load())
			}
			t.Logf("killed download %d bytes; restored from %v, %.0f bytes", partial.Load(), snap["name"], size)
		}),
		kill: func(t *testing.T, l *lab.Lab) lab.ModuleKill {
			h := l.Members()[0]
			return lab.ModuleKill{
				Task: "etcdops.etcd.etcd_restore : Save a fresh snapshot of the member that answers",
				Host: h, Module: "etcd_snapshot",
				Ready: func() bool { // the download has its first MiB
					for _, p := range snapshotDownloads(h) {
						if st, err := os.Stat(p); err == nil && st.Size() >= 1<<20 {
							return true
						}
					}
					return false
				},
			}
		},
		after: func(t *testing.T, l *lab.Lab) {
			h := l.Members()[0]
			m := snapshotDownloads(h)
			if len(m) != 1 {
				t.Fatalf("%s: downloads after the kill: %v, want the one cut short", h.Name, m)
			}
			st, err := os.Stat(m[0])
			if err != nil {
				t.Fatal(err)
			}
			partial.Store(st.Size())
			if snaps, _ := filepath.Glob(filepath.Join(h.Root(), "var/lib/etcd-restore/*.db")); len(snaps) > 0 {
				t.Fatalf("a snapshot under its final name after the kill: %v", snaps)
			}
			if st := readState(t, l, "restore-state.json"); st != nil {
				t.Fatalf("the killed run recorded a snapshot: %v", st)
			}
			t.Logf("left by the kill: %s (%d bytes)", m[0], st.Size())
		},
	}
}()

// promoteTask is the promotion of the first new member, as the report names it.
func promoteTask(l *lab.Lab) string {
	return "etcdops.etcd.etcd_member_join : Promote the member to a voter (a voter already is no change): " + freshHosts(l)[0].Name
}

func TestSoakModuleKill(t *testing.T) {
	soak(t)
	for name, mk := range map[string]moduleKill{
		"online-copy": onlineCopyKill, "offline-copy": offlineCopyKill, "backup": backupKill,
		"promote": promoteKill, "restore": restoreKill,
		"cleanup-backup": cleanupBackupKill, "snapshot-save": snapshotSaveKill,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mk.run(t)
		})
	}
}
