package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/dataset"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// One 3-member lab for the fault tests: each test leaves it whole again.
func TestFaults(t *testing.T) {
	l := Up(t, Spec{Hosts: 3})
	t.Run("partition cuts a member off and heal restores it", func(t *testing.T) { partition(t, l) })
	t.Run("killed host loses its processes and catches up after start", func(t *testing.T) { killStart(t, l) })
	t.Run("corrupted data dir stops the member from starting", func(t *testing.T) { corrupt(t, l) })
}

func partition(t *testing.T, l *Lab) {
	e1, e2, e3 := l.Hosts[0], l.Hosts[1], l.Hosts[2]
	for _, peer := range []*Host{e1, e2} {
		if err := l.Partition(e3, peer); err != nil {
			t.Fatal(err)
		}
	}
	// Cut off from both peers, etcd3 loses its leader: linearizable reads through it fail, while the
	// majority side keeps serving writes.
	waitFor(t, 30*time.Second, "etcd3 to lose quorum", func() bool { return linearizable(l, e3) != nil })
	put(t, l, e1, "/lab-test/during-partition", "v")
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("iptables", "-S", "OUTPUT").Output(); strings.Contains(string(out), l.ruleComment()) {
		t.Fatalf("heal left rules behind:\n%s", out)
	}
	waitFor(t, 60*time.Second, "etcd3 to rejoin", func() bool { return linearizable(l, e3) == nil })
	if got := get(t, l, e3, "/lab-test/during-partition"); got != "v" {
		t.Fatalf("etcd3 after heal: key written during the partition = %q, want v", got)
	}
}

func killStart(t *testing.T, l *Lab) {
	e1, e2 := l.Hosts[0], l.Hosts[1]
	init, nspawn := e2.InitPID, e2.NspawnPID
	if err := l.Kill(e2); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{init, nspawn} {
		if e2.isNspawn(pid) || nsPID(pid) == 1 {
			t.Fatalf("pid %d of the killed host still runs", pid)
		}
	}
	put(t, l, e1, "/lab-test/while-down", "w")
	if err := l.Start(e2); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitHealthy(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, l, e2, "/lab-test/while-down"); got != "w" {
		t.Fatalf("etcd2 after restart: key written while it was down = %q, want w", got)
	}
}

func corrupt(t *testing.T, l *Lab) {
	e3 := l.Hosts[2]
	files, err := l.CorruptDataDir(e3)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("corrupted %v, want the bolt db and a WAL segment", files)
	}
	_, _ = l.Exec(e3, "systemctl", "start", "etcd") // Type=notify: fails (or keeps failing) instead of becoming ready
	waitFor(t, 30*time.Second, "etcd on etcd3 to fail", func() bool {
		out, _ := l.Exec(e3, "systemctl", "show", "-p", "NRestarts", "-p", "ActiveState", "etcd")
		return !strings.Contains(string(out), "ActiveState=active") && !strings.Contains(string(out), "NRestarts=0")
	})
	if linearizable(l, e3) == nil {
		t.Fatal("etcd3 serves reads from a corrupted data dir")
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	spec := Spec{Name: "teardown", Hosts: 1, Root: root, Groups: map[string]int{"new_etcd": 1}}
	l, err := Create(spec, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	fresh := l.Host("new-etcd1")
	if fresh == nil || fresh.Member || !contains(fresh.Groups, "new_etcd") {
		t.Fatalf("extra group host: %+v", fresh)
	}
	inv, _ := os.ReadFile(l.Inventory)
	if !strings.Contains(string(inv), "[new_etcd]\nnew-etcd1 ansible_host="+fresh.Addr) {
		t.Errorf("inventory lacks the new_etcd group:\n%s", inv)
	}
	// A fresh host: etcd installed with its certificates, but not configured or enabled.
	if out, _ := l.Exec(fresh, "systemctl", "is-enabled", "etcd"); strings.TrimSpace(string(out)) != "disabled" {
		t.Errorf("etcd on the fresh host is %q, want disabled", out)
	}
	for _, f := range []string{"etc/etcd/etcd.conf", "etc/etcd/peer.crt"} {
		_, err := os.Stat(filepath.Join(fresh.Root(), f))
		if exists := err == nil; exists != (f == "etc/etcd/peer.crt") {
			t.Errorf("fresh host: %s exists = %v", f, exists)
		}
	}
	if err := l.Partition(l.Hosts[0], l.Hosts[1]); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, h := range l.Hosts {
		pids = append(pids, h.InitPID, h.NspawnPID)
	}
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, pids)
}

// A lab whose owner process died (an aborted test run) is torn down by the next Create.
func TestLeftoverIsCleaned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root := t.TempDir()
	old, err := Create(Spec{Name: "aborted", Hosts: 1, Root: root}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{old.Hosts[0].InitPID, old.Hosts[0].NspawnPID}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	old.Owner = dead.Process.Pid // its owner is gone, as after a killed test binary
	if err := old.save(); err != nil {
		t.Fatal(err)
	}
	l, err := Create(Spec{Name: "next", Hosts: 1, Root: root}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Destroy()
	assertGone(t, old, pids)
	if l.Net != old.Net {
		t.Errorf("new lab got 127.0.%d.0/24, want the freed 127.0.%d.0/24", l.Net, old.Net)
	}
}

func TestSpecErrorsNameTheFix(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Hosts: 12}, "hosts: 12 is out of range"},
		{Spec{Etcd: "3.5"}, "use 3.4 (Debian's), 3.6"},
		{Spec{Groups: map[string]int{"etcd": 1}}, `"etcd" is not a usable extra group name`},
		{Spec{Name: "Bad Name"}, "use lower-case letters"},
	} {
		_, err := Create(c.spec, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Create(%+v) = %v, want an error containing %q", c.spec, err, c.want)
		}
	}
}

func assertGone(t *testing.T, l *Lab, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmd) > 0 {
			t.Errorf("pid %d still runs after teardown: %q", pid, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after teardown (%v)", l.Dir, err)
	}
	if m := MountsUnder(l.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if out, _ := exec.Command("iptables", "-S", "OUTPUT").Output(); strings.Contains(string(out), l.ruleComment()) {
		t.Errorf("iptables rules left:\n%s", out)
	}
}

func client(t *testing.T, l *Lab, h *Host) *clientv3.Client {
	t.Helper()
	o := l.Conn(h)
	cli, err := o.V3()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// put retries until the cluster accepts the write: right after a member dies the rest may first
// have to elect a leader.
func put(t *testing.T, l *Lab, h *Host, k, v string) {
	t.Helper()
	cli := client(t, l, h)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, k, v)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s via %s for 30s: %v", k, h.Name, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func get(t *testing.T, l *Lab, h *Host, k string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := client(t, l, h).Get(ctx, k)
	if err != nil {
		t.Fatalf("get %s via %s: %v", k, h.Name, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// linearizable reads through the host's member only; an error means it cannot reach a quorum.
func linearizable(l *Lab, h *Host) error {
	o := l.Conn(h)
	o.DialTimeout = 2 * time.Second
	return o.ReadProbe(3 * time.Second)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// etcd 3.6 (built by `make etcd36`) runs from the same host layout, without the v2 API.
func TestEtcd36Lab(t *testing.T) {
	bin := filepath.Join(repoRoot(), "build", "etcd-3.6", "etcd")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not built (make etcd36)", bin)
	}
	l := Up(t, Spec{Hosts: 1, Etcd: "3.6"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := l.SeedV3(ctx, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	cli := client(t, l, l.Hosts[0])
	st, err := cli.Status(ctx, l.Hosts[0].ClientURL())
	if err != nil || !strings.HasPrefix(st.Version, "3.6.") {
		t.Fatalf("status: %v, version %v; want 3.6.x", err, st)
	}
	rep, err := dataset.VerifyV3(ctx, cli, m, false)
	if err != nil || !rep.OK(true) {
		t.Fatalf("v3 data: %v %s", err, rep)
	}
	if conf, _ := os.ReadFile(filepath.Join(l.Hosts[0].Root(), "etc/etcd/etcd.conf")); strings.Contains(string(conf), "ENABLE_V2") {
		t.Error("etcd.conf for 3.6 enables v2, which 3.6 refuses")
	}
}
