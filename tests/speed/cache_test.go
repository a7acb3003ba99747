package speed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/lab"
)

// The collection's executable is copied to a host once and run from its root-only cache, verified
// before every run: a file changed on the host never runs (it is replaced), nothing is left in
// Ansible's remote tmp or the cache besides the executable, an upgrade's first task copies the new
// version, and check mode and the module's own name reach the module as before; with pipelining off and
// on. A cached run needs no Python on the host. The controller unpacks the executable (shipped packed)
// into its own cache, and a changed file there is never sent.
func TestModuleCache(t *testing.T) {
	env := ansibletest.Install(t)
	root := ansibletest.Root(t)
	exe, err := os.ReadFile(filepath.Join(root, "bin", "linux_amd64", "etcdops"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(exe)
	l := lab.Up(t, lab.Spec{Hosts: 1})
	h := l.Hosts[0]
	cacheDir := filepath.Join(h.Root(), "var/cache/etcdops-etcd")
	cached := filepath.Join(cacheDir, "etcdops-"+hex.EncodeToString(sum[:]))
	marker := "/root/tampered-ran"
	// The controller's cache of the unpacked executable (the collection ships it packed), this test's own.
	ctlCache := t.TempDir()
	env = append(env, "XDG_CACHE_HOME="+ctlCache)
	ctlCached := filepath.Join(ctlCache, "etcdops-etcd/controller", hex.EncodeToString(sum[:]), "etcdops")
	pb := filepath.Join(t.TempDir(), "cache.yml")
	if err := os.WriteFile(pb, []byte(`- hosts: etcd
  gather_facts: false
  tasks:
    - name: checked
      etcdops.etcd.etcd_run_state: {path: /root/state.json, state: recorded, status: offline}
      check_mode: true
      register: checked
    - name: recorded
      etcdops.etcd.etcd_run_state: {path: /root/state.json, state: recorded, status: offline}
      register: recorded
    - name: bad
      etcdops.etcd.etcd_run_state: {path: /root/state.json, status_not_an_option: x}
      register: bad
      ignore_errors: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var extraEnv map[string]string
	run := func(pipelining string) {
		t.Helper()
		e := lab.EnvMap(env)
		e["ANSIBLE_PIPELINING"] = pipelining
		for k, v := range extraEnv {
			e[k] = v
		}
		res, err := l.Playbook(context.Background(), lab.Run{Playbook: pb, Env: e})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Stats[h.Name]; s.Failures != 0 || s.Unreachable != 0 {
			t.Fatalf("pipelining=%s: %+v\n%s", pipelining, s, res.Raw)
		}
		checked, recorded, bad := res.Find("checked")[0], res.Find("recorded")[0], res.Find("bad")[0]
		if !checked.Changed() || !recorded.Changed() {
			t.Errorf("pipelining=%s: check mode changed=%v, recorded changed=%v, want both true", pipelining, checked.Changed(), recorded.Changed())
		}
		if msg, _ := bad.Values["msg"].(string); !bad.Failed() || !strings.Contains(msg, "status_not_an_option") {
			t.Errorf("pipelining=%s: unknown option: %v", pipelining, bad.Values)
		}
		got, err := os.ReadFile(cached)
		if err != nil || sha256.Sum256(got) != sum {
			t.Fatalf("pipelining=%s: cached executable missing or not the collection's (%v)", pipelining, err)
		}
		if got, err := os.ReadFile(ctlCached); err != nil || sha256.Sum256(got) != sum {
			t.Errorf("pipelining=%s: the controller's cache lacks the unpacked executable (%v)", pipelining, err)
		}
		for path, want := range map[string]os.FileMode{cacheDir: os.ModeDir | 0o700, cached: 0o700, filepath.Dir(ctlCached): os.ModeDir | 0o700} {
			if st, err := os.Lstat(path); err != nil || st.Mode() != want {
				t.Errorf("pipelining=%s: %s: %v %v, want %v", pipelining, path, st.Mode(), err, want)
			}
		}
		if ents, _ := os.ReadDir(cacheDir); len(ents) != 1 {
			t.Errorf("pipelining=%s: the cache holds %d files, want only the executable (no args file)", pipelining, len(ents))
		}
		if ents, _ := os.ReadDir(filepath.Join(h.Root(), "root/.ansible/tmp")); len(ents) != 0 {
			t.Errorf("pipelining=%s: %d entries left in the host's remote tmp", pipelining, len(ents))
		}
		if out, _ := l.Exec(h, "pgrep", "-f", "etcdops|/proc/self/fd/"); len(strings.TrimSpace(string(out))) != 0 {
			t.Errorf("pipelining=%s: left running: %s", pipelining, out)
		}
		if _, err := os.Stat(filepath.Join(h.Root(), marker)); err == nil {
			t.Fatalf("pipelining=%s: the tampered cache file ran", pipelining)
		}
		if err := os.Remove(filepath.Join(h.Root(), "root/state.json")); err != nil {
			t.Fatal(err)
		}
	}
	hostExec := func(args ...string) {
		t.Helper()
		if out, err := l.Exec(h, args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	for _, pipelining := range []string{"False", "True"} {
		run(pipelining) // first run: copies it; then from the cache
		run(pipelining)
		// From the cache, a module task starts no Python on the host and writes no file: it runs with no
		// python3 there and a remote tmp that cannot be made (the fallbacks would need one or the other).
		hostExec("mv", "/usr/bin/python3", "/usr/bin/python3.hidden")
		extraEnv = map[string]string{"ANSIBLE_REMOTE_TMP": "/etc/hostname/no-tmp"}
		run(pipelining)
		extraEnv = nil
		hostExec("mv", "/usr/bin/python3.hidden", "/usr/bin/python3")
		// Tampered: an executable of the same size that would leave a marker must never run.
		tampered := append([]byte("#!/bin/sh\ntouch "+marker+"\nexit 0\n"), make([]byte, len(exe))...)[:len(exe)]
		if err := os.WriteFile(cached, tampered, 0o700); err != nil {
			t.Fatal(err)
		}
		run(pipelining)
		// Upgraded: the cache holds only another version's executable; the first task copies this one (the
		// earlier version goes) instead of failing while it opens a file that is not there yet.
		if err := os.Rename(cached, filepath.Join(cacheDir, "etcdops-"+strings.Repeat("0", 64))); err != nil {
			t.Fatal(err)
		}
		run(pipelining)
		if pipelining == "False" {
			// A changed file in the controller's cache is never sent: the host lacks the executable, the
			// controller unpacks it again and sends that (the host's copy is the collection's: run checks).
			if err := os.WriteFile(ctlCached, tampered, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(cached); err != nil {
				t.Fatal(err)
			}
			run(pipelining)
		}
	}
}
