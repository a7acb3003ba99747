package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/etcdops/etcd/pkg/etcdconn"
)

// mountOverlay gives the host a copy-on-write root over the base tree: a host costs only what it
// writes, and the base stays untouched for the next lab.
func mountOverlay(base string, h *Host) error {
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", base, filepath.Join(h.Dir, "upper"), filepath.Join(h.Dir, "work"))
	if err := syscall.Mount("overlay", h.Root(), "overlay", 0, opts); err != nil {
		return fmt.Errorf("%s: mount overlay root: %v (the lab needs root and overlayfs)", h.Name, err)
	}
	return nil
}

// boot starts the host's systemd-nspawn in its own session (it outlives the CLI that started it) and
// records the nspawn and container-init PIDs, the only processes teardown will ever signal.
func (l *Lab) boot(h *Host) error {
	console, err := os.OpenFile(filepath.Join(h.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	// No --register/--keep-unit: the machine has no systemd to register with. No --private-network:
	// hosts share the machine's network and each binds its own loopback address.
	cmd := exec.Command("systemd-nspawn", "-D", h.Root(), "--register=no", "--keep-unit", "--console=passive",
		"-b", "--machine="+h.Name)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // nothing of the caller's environment leaks into the hosts
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: systemd-nspawn: %v (run `make deps`: systemd-container)", h.Name, err)
	}
	go cmd.Wait() // reap it when it ends, if this process is still around
	h.NspawnPID = cmd.Process.Pid
	deadline := time.Now().Add(20 * time.Second)
	for h.InitPID == 0 {
		if !Alive(h.NspawnPID) || time.Now().After(deadline) {
			return fmt.Errorf("%s: container did not start; console:\n%s", h.Name, h.consoleTail())
		}
		h.InitPID = containerInit(h.NspawnPID)
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// containerInit finds the container's PID 1 (systemd) among nspawn's descendants.
func containerInit(nspawn int) int {
	queue := []int{nspawn}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children(pid) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c))
			if strings.TrimSpace(string(comm)) == "systemd" && nsPID(c) == 1 {
				return c
			}
			queue = append(queue, c)
		}
	}
	return 0
}

func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// nsPID is the process's PID inside its innermost PID namespace (NSpid's last field).
func nsPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, ln := range strings.Split(string(b), "\n") {
		if f := strings.Fields(ln); len(f) > 1 && f[0] == "NSpid:" {
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

func parentPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, ln := range strings.Split(string(b), "\n") {
		if f := strings.Fields(ln); len(f) == 2 && f[0] == "PPid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// isNspawn checks that pid is still this host's systemd-nspawn (PIDs are reused).
func (h *Host) isNspawn(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 2 && filepath.Base(args[0]) == "systemd-nspawn" && contains(args, h.Root())
}

// isInit checks that pid is still the PID 1 of this host's container.
func (h *Host) isInit(pid int) bool {
	if pid <= 0 || nsPID(pid) != 1 || !h.isNspawn(h.NspawnPID) {
		return false
	}
	for p := parentPID(pid); p > 1; p = parentPID(p) {
		if p == h.NspawnPID {
			return true
		}
	}
	return false
}

// Running reports whether the host's container is up.
func (h *Host) Running() bool { return h.isInit(h.InitPID) }

// halt ends the container: SIGKILL to its PID 1 takes every process inside with it (a node crash);
// graceful asks systemd to power off first. It returns once nspawn has exited.
func (l *Lab) halt(h *Host, graceful bool) error {
	if h.isInit(h.InitPID) {
		if graceful {
			_ = syscall.Kill(h.InitPID, sigPoweroff)
			waitGone(h, 60*time.Second)
		}
		if h.isInit(h.InitPID) {
			if err := syscall.Kill(h.InitPID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("%s: kill container init %d: %v", h.Name, h.InitPID, err)
			}
		}
	}
	if h.isNspawn(h.NspawnPID) && !waitGone(h, 15*time.Second) {
		_ = syscall.Kill(h.NspawnPID, syscall.SIGKILL)
		waitGone(h, 5*time.Second)
	}
	if h.isNspawn(h.NspawnPID) {
		return fmt.Errorf("%s: systemd-nspawn %d did not exit", h.Name, h.NspawnPID)
	}
	h.NspawnPID, h.InitPID = 0, 0
	return l.save()
}

func waitGone(h *Host, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for h.isNspawn(h.NspawnPID) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// Destroy stops every host by its recorded PIDs, removes the lab's iptables rules, unmounts the
// trees and deletes the lab directory (host trees are lab scratch, not user data).
func (l *Lab) Destroy() error {
	var errs []error
	for _, h := range l.Hosts {
		if err := l.halt(h, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.Heal(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, m := range MountsUnder(l.Dir) {
		if err := syscall.Unmount(m, 0); err != nil {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %v", m, err)
			}
		}
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		return err
	}
	l.logf("lab %q is down; no container processes or trees left", l.Spec.Name)
	return nil
}

// MountsUnder lists mount points at or below dir, deepest first.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// waitSSH waits until the host's sshd accepts connections on its address.
func (l *Lab) waitSSH(h *Host) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", h.Addr+":22", time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if !h.Running() {
			return fmt.Errorf("%s: container ended while booting; console:\n%s", h.Name, h.consoleTail())
		}
		if time.Now().After(deadline) {
			out, _ := l.Exec(h, "systemctl", "status", "--no-pager", "ssh")
			return fmt.Errorf("%s: sshd not listening on %s:22 after 90s:\n%s", h.Name, h.Addr, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Conn returns connection options for the lab's etcd (the initial members, or the given hosts) with
// the controller's client certificate.
func (l *Lab) Conn(hosts ...*Host) etcdconn.Options {
	return etcdconn.Options{Endpoints: l.Endpoints(hosts...), CACert: l.CACert, ClientCert: l.ClientCert,
		ClientKey: l.ClientKey, DialTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second}
}

// WaitHealthy waits until every initial member whose container runs answers a linearizable read.
func (l *Lab) WaitHealthy() error {
	deadline := time.Now().Add(120 * time.Second)
	for _, h := range l.Members() {
		if !h.Running() {
			continue
		}
		o := l.Conn(h)
		for {
			err := o.ReadProbe(3 * time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				out, _ := l.Exec(h, "journalctl", "-u", "etcd", "--no-pager", "-n", "30")
				return fmt.Errorf("%s: etcd not healthy after 120s: %v\n%s", h.Name, err, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	return nil
}

// Exec runs a command inside the host (all of its namespaces) and returns its combined output.
func (l *Lab) Exec(h *Host, args ...string) ([]byte, error) {
	if !h.Running() {
		return nil, fmt.Errorf("%s is not running", h.Name)
	}
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(h.InitPID), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %v\n%s", h.Name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// UnitActive reports whether a systemd unit is active on the host.
func (l *Lab) UnitActive(h *Host, unit string) bool {
	out, _ := l.Exec(h, "systemctl", "is-active", unit)
	return strings.TrimSpace(string(out)) == "active"
}

func (h *Host) consoleTail() string {
	b, _ := os.ReadFile(filepath.Join(h.Dir, "console.log"))
	return tail(string(b), 2000)
}

// sigPoweroff is SIGRTMIN+4, on which systemd powers off in order (Go's syscall has no SIGRTMIN).
const sigPoweroff = syscall.Signal(34 + 4)
