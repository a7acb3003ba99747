package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
)

// An etcd password never rests on a host (issue 19): with pipelining off and on, given as the module's
// password or as ETCDCTL_PASSWORD through `environment:`, while the module waits on a frozen etcd and
// after ansible-playbook was killed meanwhile, no file where Ansible or this collection write on the
// host, and no process's argv or environment, holds it: it is piped to the module. Once etcd answers
// again, the module shows it got the password (etcd refuses it: auth is off in the lab).
func TestNoPasswordRestsOnTheHost(t *testing.T) {
	env := lab.EnvMap(ansibletest.Install(t))
	l := lab.Up(t, lab.Spec{Hosts: 1})
	h := l.Hosts[0]
	const password = "pw-Rests-Nowhere-7f3q"
	dir := t.TempDir()
	for _, variant := range []string{"password", "environment"} {
		task := fmt.Sprintf(`etcdops.etcd.etcd_cluster_info: {endpoints: ["%s"], user: root, password: %s, dial_timeout: 20s}`, h.ClientURL(), password)
		if variant == "environment" {
			task = fmt.Sprintf(`etcdops.etcd.etcd_cluster_info: {endpoints: ["%s"], user: root, dial_timeout: 20s}
      environment: {ETCDCTL_PASSWORD: %s}`, h.ClientURL(), password)
		}
		pb := filepath.Join(dir, variant+".yml")
		if err := os.WriteFile(pb, []byte(`- hosts: etcd
  gather_facts: false
  tasks:
    - name: with a password
      `+task+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, pipelining := range []string{"False", "True"} {
			e := map[string]string{"ANSIBLE_PIPELINING": pipelining}
			for k, v := range env {
				e[k] = v
			}
			what := variant + ", pipelining " + pipelining
			if _, err := l.Exec(h, "systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", "etcd"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = l.Playbook(ctx, lab.Run{Playbook: pb, Env: e})
			}()
			if !waitModuleProcess(h, "etcd_cluster_info", 2*time.Minute) {
				cancel()
				<-done
				t.Fatalf("%s: the module never started on the host", what)
			}
			checkNoPassword(t, h, password, what+", the module waiting")
			cancel() // ansible-playbook killed; the module on the host waits on (the run ends with it)
			<-done
			checkNoPassword(t, h, password, what+", ansible-playbook killed")
			if _, err := l.Exec(h, "systemctl", "kill", "--kill-who=main", "--signal=SIGCONT", "etcd"); err != nil {
				t.Fatal(err)
			}
			res, err := l.Playbook(context.Background(), lab.Run{Playbook: pb, Env: e})
			if err != nil {
				t.Fatal(err)
			}
			got := res.Find("with a password")
			if len(got) != 1 || !got[0].Failed() || !strings.Contains(fmt.Sprint(got[0].Values["msg"]), "auth") {
				t.Errorf("%s: want etcd to refuse the password (auth is off): %v", what, got)
			}
			if bytes.Contains(res.Raw, []byte(password)) {
				t.Errorf("%s: the password is in the playbook's output", what)
			}
			checkNoPassword(t, h, password, what+", after a finished run")
		}
	}
}

// waitModuleProcess waits until the module's process runs on the host.
func waitModuleProcess(h *lab.Host, module string, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if lab.ModuleProcess(h, module) > 0 {
			return true
		}
	}
	return false
}

// checkNoPassword fails the test when the password is in a process's argv or environment on this
// machine (the lab's hosts share its kernel) or in a file under the host's writable places, seen
// through its init's root (tmpfs mounts such as /run and /tmp show only there).
func checkNoPassword(t *testing.T, h *lab.Host, password, when string) {
	t.Helper()
	for _, kind := range []string{"cmdline", "environ"} {
		files, _ := filepath.Glob("/proc/[0-9]*/" + kind)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(password)) {
				t.Errorf("%s: %s holds the password", when, f)
			}
		}
	}
	root := fmt.Sprintf("/proc/%d/root", h.InitPID)
	for _, d := range []string{"root", "tmp", "var/tmp", "var/cache", "run", "home"} {
		_ = filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			if info, err := e.Info(); err != nil || info.Size() > 64<<20 {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(password)) {
				t.Errorf("%s: %s holds the password", when, strings.TrimPrefix(path, root))
			}
			return nil
		})
	}
}
