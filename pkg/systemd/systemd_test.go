package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"etcd":                        "etcd.service",
		"etcd.service":                "etcd.service",
		"etcdops-temp-etcd.service":   "etcdops-temp-etcd.service",
		"etcd-3.4":                    "etcd-3.4.service",
		"getty@tty1.service":          "getty@tty1.service",
		"atomic-openshift-master-api": "atomic-openshift-master-api.service",
		"foo.timer":                   "foo.timer",
		`a\x2db`:                      `a\x2db.service`,
	} {
		got, err := UnitName(in)
		if err != nil || got != want {
			t.Errorf("UnitName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":                       "empty",
		"../../../tmp/x":         "'/'",
		"etcd/../x":              "'/'",
		"..service":              `".."`,
		"a..b":                   `".."`,
		"etcd service":           "not allowed",
		"etcd;rm":                "not allowed",
		"étcd":                   "not allowed",
		".service":               "no name",
		"@x.service":             "NAME@INSTANCE",
		"a@b@c":                  "NAME@INSTANCE",
		strings.Repeat("a", 250): "255",
	} {
		got, err := UnitName(in)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "etcd.service") {
			t.Errorf("UnitName(%q) = %q, %v; want an error mentioning %s and an example", in, got, err, why)
		}
	}
}

func TestDropInSerialisesAndParsesBack(t *testing.T) {
	b, err := DropIn([]string{"Written by etcdops.etcd for one start."},
		NewOption("Service", "EnvironmentFile", "/run/systemd/system/etcd.service.d/x.env"),
		NewOption("Service", "Environment", "A=1 B=2"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Written by etcdops.etcd for one start.\n[Service]\nEnvironmentFile=/run/systemd/system/etcd.service.d/x.env\nEnvironment=A=1 B=2\n"
	if string(b) != want {
		t.Fatalf("drop-in:\n%s\nwant:\n%s", b, want)
	}
	opts, err := unit.Deserialize(strings.NewReader(string(b)))
	if err != nil || len(opts) != 2 || opts[0].Value != "/run/systemd/system/etcd.service.d/x.env" {
		t.Fatalf("parsed back: %v %v", opts, err)
	}
}

func TestWriteAndRemoveDropIn(t *testing.T) {
	dir := DropInDir(t.TempDir(), "etcd.service")
	path := filepath.Join(dir, "zz.conf")
	if err := WriteDropIn(path, nil, NewOption("Service", "Restart", "no")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "[Service]\nRestart=no\n" {
		t.Fatalf("written: %q", b)
	}
	if removed, err := RemoveFiles(path, filepath.Join(dir, "absent")); !removed || err != nil {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if removed, err := RemoveFiles(path); removed || err != nil {
		t.Fatalf("remove again: %v %v", removed, err)
	}
}

func TestExecStartDecoding(t *testing.T) {
	v := [][]any{{"/usr/bin/etcd", []string{"etcd", "--name", "x"}, false, uint64(0)}, {"/bin/true", []string{}, false}}
	got := execStarts(v)
	if len(got) != 2 || strings.Join(got[0], " ") != "/usr/bin/etcd --name x" || got[1][0] != "/bin/true" {
		t.Fatalf("execStarts: %q", got)
	}
	if (UnitInfo{ExecStart: got}).Binary() != "/usr/bin/etcd" {
		t.Fatal("Binary")
	}
}
