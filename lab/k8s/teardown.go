package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/etcdops/etcd/lab"
)

// start runs a process in the namespace (nsenter, not `ip netns exec`: that gives each process its
// own mount namespace, and containerd must see kubelet's volume mounts), in its own session so that a
// persistent lab outlives labctl, output in logs/<name>.log.
func (l *Lab) start(name string, args ...string) error {
	logf, err := os.OpenFile(l.path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + NetNS, "--"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // nsenter execs the program: this reaps it should it end while we run
	l.PIDs[name] = cmd.Process.Pid
	l.Order = append(l.Order, name)
	return l.save()
}

// Destroy stops the lab's processes and every pod process (they live in kubepods cgroups and behind
// containerd shims that outlive containerd), unmounts what they left, removes the namespace, the
// host's routes (with the veth), the kubepods cgroups, the host-path volumes and the lab directory.
func (l *Lab) Destroy() error {
	for i := len(l.Order) - 1; i >= 0; i-- {
		stop(l.PIDs[l.Order[i]])
	}
	for _, pid := range podProcesses(l.path("containerd", "containerd.sock")) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var left []int
	_ = WaitUntil(10*time.Second, "pod processes gone", func() error {
		left = podProcesses(l.path("containerd", "containerd.sock"))
		if len(left) > 0 {
			return errNotYet
		}
		return nil
	})
	if len(left) > 0 {
		return fmt.Errorf("k8s lab teardown: pod processes %v did not end", left)
	}
	for _, m := range append(lab.MountsUnder(l.Dir), lab.MountsUnder(hostpathPV)...) {
		if err := syscall.Unmount(m, 0); err != nil {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %v", m, err)
			}
		}
	}
	if _, err := os.Stat("/run/netns/" + NetNS); err == nil {
		if out, err := exec.Command("ip", "netns", "delete", NetNS).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns delete %s: %v\n%s", NetNS, err, out)
		}
	}
	removeCgroups("kubepods")
	for _, d := range []string{hostpathPV, l.Dir} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	l.logf("k8s lab %s is down: no processes, mounts, namespace or routes left", l.Dir)
	return nil
}

// stop ends a process: SIGTERM, then SIGKILL after 10 s.
func stop(pid int) {
	if !lab.Alive(pid) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	if WaitUntil(10*time.Second, "exit", func() error {
		if lab.Alive(pid) && !zombie(pid) {
			return errNotYet
		}
		return nil
	}) != nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
