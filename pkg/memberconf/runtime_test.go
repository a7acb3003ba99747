package memberconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/etcdops/etcd/pkg/systemd"
)

// units answers Unit from a map (a unit it lacks is not-found, as systemd says) or with err.
type units struct {
	known map[string]systemd.UnitInfo
	err   error
}

func (u units) DaemonReload(context.Context) error { return nil }
func (u units) Unit(_ context.Context, name string) (systemd.UnitInfo, error) {
	if info, ok := u.known[name]; ok {
		return info, u.err
	}
	return systemd.UnitInfo{Name: name, LoadState: "not-found"}, u.err
}

// The unit's first ExecStart (a containerized etcd's docker run, as etcd_facts reads it), "" for a unit
// systemd does not know or a host without systemd, and another D-Bus failure naming the option.
func TestRuntimeFactsUnit(t *testing.T) {
	docker := []string{"/usr/bin/docker", "run", "--name", "etcd_container", "--env-file=/etc/etcd/etcd.conf", "etcd:3.2"}
	u := units{known: map[string]systemd.UnitInfo{"etcd_container.service": {LoadState: "loaded",
		ExecStart: [][]string{docker, {"/bin/true"}}}}}
	for unit, want := range map[string]string{"etcd_container": strings.Join(docker, " "), "etcd": ""} {
		p := Params{Path: "/etc/etcd/etcd.conf", Unit: unit}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		var res Result
		if err := runtimeFacts(context.Background(), p, u, &res); err != nil || res.ExecStart == nil || *res.ExecStart != want {
			t.Errorf("unit %s: exec_start %v (%v), want %q", unit, res.ExecStart, err, want)
		}
		if res.Version != nil {
			t.Errorf("unit %s: a version without option binary: %q", unit, *res.Version)
		}
	}
	p := Params{Path: "/etc/etcd/etcd.conf", Unit: "etcd"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	err := runtimeFacts(context.Background(), p, units{err: errors.New("no such method")}, &Result{})
	if err == nil || !strings.Contains(err.Error(), "option unit (etcd.service)") {
		t.Errorf("a D-Bus failure: %v", err)
	}
	var res Result
	err = runtimeFacts(context.Background(), p, units{err: fmt.Errorf("%w: no socket", systemd.ErrNoSystemd)}, &res)
	if err != nil || res.ExecStart == nil || *res.ExecStart != "" {
		t.Errorf("a host without systemd: exec_start %v (%v), want \"\"", res.ExecStart, err)
	}
}

// The version from whatever the binary prints (a wrapper may prefix its lines or exit non-zero), ""
// for one that does not run or prints none.
func TestBinaryVersion(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for binary, want := range map[string]string{
		script("etcd", "echo 'etcd Version: 3.2.32'; echo 'Git SHA: 7dc07f2'"): "3.2.32",
		script("wrapper", "echo '[rkt] etcd Version: 3.3.25'; exit 1"):         "3.3.25",
		script("silent", "echo usage"):                                         "",
		filepath.Join(dir, "none"):                                             "",
	} {
		if got := binaryVersion(context.Background(), binary); got != want {
			t.Errorf("%s: version %q, want %q", filepath.Base(binary), got, want)
		}
	}
}
