package lab

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var testLabs atomic.Int32

// Up creates a lab for one test and tears it down with t.Cleanup. Without a name the lab is named
// after the test process (t<pid>-<n>), so engineers running the same tests at once never collide and
// a lab left by a killed test binary is cleaned by the next Create. Prefer one lab per test binary
// (Create in TestMain) when tests can share it: a lab costs a few seconds and ~100 MB.
func Up(t testing.TB, spec Spec) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (systemd-nspawn, overlay mounts, iptables)")
	}
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("t%d-%d", os.Getpid(), testLabs.Add(1))
	}
	l, err := Create(spec, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Destroy(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
	})
	return l
}

// V3Client connects a v3 client to the lab's members (or the given hosts) over TLS with the
// controller's client certificate; it is closed by t.Cleanup.
func (l *Lab) V3Client(t testing.TB, hosts ...*Host) *clientv3.Client {
	t.Helper()
	o := l.Conn(hosts...)
	cli, err := o.V3()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
