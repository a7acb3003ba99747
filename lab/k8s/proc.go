package k8s

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/etcdops/etcd/lab"
)

// podProcesses lists what runs for pods: processes in kubepods cgroups and the containerd shims of
// the lab's containerd (they outlive containerd and are not in its process tree).
func podProcesses(sock string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if pid == os.Getpid() || zombie(pid) {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if strings.Contains(string(cg), "/kubepods") || strings.Contains(string(cmd), sock) {
			out = append(out, pid)
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// removeCgroups removes the named cgroup tree from every hierarchy, deepest first (the processes in
// it are gone; rmdir of an empty cgroup is how it is deleted).
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if d := "/sys/fs/cgroup/" + name; dirExists(d) {
		roots = append(roots, d)
	}
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			os.Remove(d)
		}
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Leftovers names what a torn-down lab must not leave: its processes, pod processes, mounts, the
// namespace, the veth, kubepods cgroups, host-path volumes (empty: nothing left).
func (l *Lab) Leftovers() []string {
	var out []string
	dir := l.Dir
	for name, pid := range l.PIDs {
		if lab.Alive(pid) && !zombie(pid) {
			out = append(out, fmt.Sprintf("%s (pid %d)", name, pid))
		}
	}
	for _, pid := range podProcesses(filepath.Join(dir, "containerd", "containerd.sock")) {
		out = append(out, "process "+strconv.Itoa(pid))
	}
	for _, m := range append(lab.MountsUnder(dir), lab.MountsUnder(hostpathPV)...) {
		out = append(out, "mount "+m)
	}
	for _, p := range []string{"/run/netns/" + NetNS, "/sys/class/net/" + HostVeth, hostpathPV, dir} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	return append(out, cg...)
}
