package lab

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kill crashes the host: every process in it dies at once, like a power cut. Its disk stays.
func (l *Lab) Kill(h *Host) error { return l.halt(h, false) }

// Stop shuts the host down in order (systemd stops etcd and the other units) and waits for it.
func (l *Lab) Stop(h *Host) error { return l.halt(h, true) }

// Start boots a stopped or killed host from its existing tree and waits for sshd. etcd starts as the
// host's units say; call WaitHealthy when the cluster is expected to be whole again.
func (l *Lab) Start(h *Host) error {
	if h.Running() {
		return nil
	}
	if len(MountsUnder(h.Root())) == 0 { // the machine rebooted since: the overlay is gone, its layers are not
		if err := mountOverlay(l.Base, h); err != nil {
			return err
		}
	}
	if err := l.boot(h); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	return l.waitSSH(h)
}

// Restart stops the host in order and boots it again.
func (l *Lab) Restart(h *Host) error {
	if err := l.Stop(h); err != nil {
		return err
	}
	return l.Start(h)
}

// CorruptDataDir stops etcd on the host and overwrites, with random bytes, both meta pages of its
// bolt database (bolt keeps two, one alone would be survivable) and a stretch of its first WAL
// segment's records, so the member cannot start from that data dir. etcd is left stopped; its unit
// fails when started.
func (l *Lab) CorruptDataDir(h *Host) ([]string, error) {
	if _, err := l.Exec(h, "systemctl", "stop", "etcd"); err != nil {
		return nil, err
	}
	member := filepath.Join(h.Root(), "var/lib/etcd/member")
	wals, _ := filepath.Glob(filepath.Join(member, "wal", "*.wal"))
	if len(wals) == 0 {
		return nil, fmt.Errorf("%s: no WAL under %s: nothing to corrupt", h.Name, member)
	}
	sort.Strings(wals)
	var hit []string
	for _, f := range []struct {
		path    string
		at, len int64
	}{
		{filepath.Join(member, "snap", "db"), 0, 8192},
		{wals[0], 256, 4096},
	} {
		garbage := make([]byte, f.len)
		_, _ = rand.Read(garbage)
		fh, err := os.OpenFile(f.path, os.O_WRONLY, 0)
		if err != nil {
			return hit, err
		}
		_, err = fh.WriteAt(garbage, f.at)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return hit, err
		}
		hit = append(hit, strings.TrimPrefix(f.path, h.Root()))
	}
	return hit, nil
}

// Partition cuts etcd traffic between two hosts in both directions. Every host shares the machine's
// network and peer connections leave from 127.0.0.1, so the rule matches the sending etcd by its
// per-host uid and the receiving host by its address: a's etcd cannot reach b and b's cannot reach a.
// SSH (root) and other hosts' traffic stay untouched.
func (l *Lab) Partition(a, b *Host) error {
	for _, r := range l.partitionRules(a, b) {
		if exec.Command("iptables", append([]string{"-C"}, r...)...).Run() == nil {
			continue
		}
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables: %v: %s (run `make deps`: iptables)", err, out)
		}
	}
	return nil
}

// Heal removes the partition between a and b, or with no hosts every rule this lab added.
func (l *Lab) Heal(hosts ...*Host) error {
	var rules [][]string
	if len(hosts) == 2 {
		rules = l.partitionRules(hosts[0], hosts[1])
	} else if len(hosts) == 0 {
		var err error
		if rules, err = l.ownRules(); err != nil {
			return err
		}
	} else {
		return fmt.Errorf("heal: give two hosts or none")
	}
	for _, r := range rules {
		for exec.Command("iptables", append([]string{"-C"}, r...)...).Run() == nil {
			if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("iptables: %v: %s", err, out)
			}
		}
	}
	return nil
}

func (l *Lab) ruleComment() string { return "etcdops-lab:" + l.Spec.Name }

func (l *Lab) partitionRules(a, b *Host) [][]string {
	rule := func(from, to *Host) []string {
		return []string{"OUTPUT", "-m", "owner", "--uid-owner", strconv.Itoa(from.EtcdUID), "-d", to.Addr + "/32",
			"-m", "comment", "--comment", l.ruleComment(), "-j", "DROP"}
	}
	return [][]string{rule(a, b), rule(b, a)}
}

// ownRules lists the OUTPUT rules carrying this lab's comment (those left by a crashed run too).
func (l *Lab) ownRules() ([][]string, error) {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, nil // no iptables: no partition can have been made
	}
	out, err := exec.Command("iptables", "-S", "OUTPUT").Output()
	if err != nil {
		return nil, fmt.Errorf("iptables -S OUTPUT: %v", err)
	}
	var rules [][]string
	for _, ln := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(ln, "-A OUTPUT ") || !strings.Contains(ln, `"`+l.ruleComment()+`"`) &&
			!strings.Contains(ln, " "+l.ruleComment()+" ") {
			continue
		}
		var uid, dst string
		f := strings.Fields(ln)
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "--uid-owner":
				uid = f[i+1]
			case "-d":
				dst = f[i+1]
			}
		}
		rules = append(rules, []string{"OUTPUT", "-m", "owner", "--uid-owner", uid, "-d", dst,
			"-m", "comment", "--comment", l.ruleComment(), "-j", "DROP"})
	}
	return rules, nil
}
