package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultCache holds the Debian base tree shared by every lab on this machine (and by CI's runs).
const DefaultCache = "/var/cache/etcdops-lab"

// basePackages are what every lab host needs: systemd as PID 1, sshd and python3 for Ansible, and
// Debian's etcd 3.4 (server and etcdctl) as the OpenShift 3.x hosts had.
var basePackages = []string{"systemd", "systemd-sysv", "dbus", "python3", "etcd-server", "etcd-client",
	"iproute2", "openssh-server"}

// baseMarker is written last: a tree without it is a debootstrap that did not finish.
const baseMarker = ".etcdops-lab-base"

// EnsureBase returns the base tree under cache, building it with debootstrap when it is missing or
// unfinished. Concurrent callers (several test binaries) wait on one lock and build it once.
func EnsureBase(cache string, logf func(string, ...any)) (string, error) {
	base := filepath.Join(cache, "base")
	want := strings.Join(basePackages, ",")
	if b, err := os.ReadFile(filepath.Join(base, baseMarker)); err == nil && string(b) == want {
		return base, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "base.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if b, err := os.ReadFile(filepath.Join(base, baseMarker)); err == nil && string(b) == want {
		return base, nil // another process built it while we waited
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("debootstrap not found: run `make deps` (apt-get install debootstrap systemd-container)")
	}
	tmp := base + ".tmp"
	for _, d := range []string{tmp, base} {
		if err := os.RemoveAll(d); err != nil { // a half-built tree is ours to replace, never user data
			return "", err
		}
	}
	logf("building the Debian bookworm base tree in %s (once, about a minute)", base)
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+want, "bookworm", tmp,
		"http://deb.debian.org/debian")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %v\n%s", err, tail(string(out), 3000))
	}
	if err := trimBase(tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, baseMarker), []byte(want), 0o644); err != nil {
		return "", err
	}
	return base, os.Rename(tmp, base)
}

// trimBase turns the fresh tree into a neutral template: services a host must not start on its own
// (Debian's etcd on localhost, sshd on every address) are disabled here and enabled per host once
// they are configured.
func trimBase(root string) error {
	for _, l := range []string{
		"etc/systemd/system/multi-user.target.wants/etcd.service",
		"etc/systemd/system/multi-user.target.wants/ssh.service",
		"etc/systemd/system/sshd.service",
		"etc/systemd/system/etcd2.service",
	} {
		if err := os.Remove(filepath.Join(root, l)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	// Host keys are generated per host at boot (ssh-keygen -A in the unit), not shared by copies.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
