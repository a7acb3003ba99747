package memberconf

import (
	"strings"
	"testing"
)

func str(s string) *string { return &s }

// Seed 004's drop-in, as Container Linux Config writes it.
const seedDropIn = `[Service]
ExecStart=
ExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \
  --name="demo-etcd-1" \
  --listen-peer-urls="http://0.0.0.0:2380" \
  --listen-client-urls="http://10.240.0.1:2379,http://0.0.0.0:4001" \
  --initial-advertise-peer-urls="http://10.240.0.1:2380" \
  --initial-cluster="demo-etcd-1=http://10.240.0.1:2380,demo-etcd-2=http://10.240.0.2:2380,demo-etcd-3=http://10.240.0.3:2380" \
  --initial-cluster-state="new" \
  --initial-cluster-token="demo-etcd-token" \
  --advertise-client-urls="http://10.240.0.1:2379"
`

func TestReadSeedDropIn(t *testing.T) {
	env, cmd, err := ReadDropIn([]byte(seedDropIn))
	if err != nil {
		t.Fatal(err)
	}
	if cmd != "/usr/lib/coreos/etcd-wrapper $ETCD_OPTS" {
		t.Errorf("command %q", cmd)
	}
	want := map[string]string{"ETCD_NAME": "demo-etcd-1", "ETCD_INITIAL_CLUSTER_STATE": "new",
		"ETCD_LISTEN_CLIENT_URLS": "http://10.240.0.1:2379,http://0.0.0.0:4001", "ETCD_INITIAL_CLUSTER_TOKEN": "demo-etcd-token",
		"ETCD_INITIAL_CLUSTER": "demo-etcd-1=http://10.240.0.1:2380,demo-etcd-2=http://10.240.0.2:2380,demo-etcd-3=http://10.240.0.3:2380"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != 8 {
		t.Errorf("%d settings, want 8: %v", len(env), env)
	}
}

// Seed 004 step 4: the failed member's drop-in gets state existing and the new initial cluster; every
// other word (the wrapper, $ETCD_OPTS, the author's quoting) stays as written; writing it again is
// no change; a removal and an awkward value come back as written.
func TestApplyDropIn(t *testing.T) {
	changes, err := Sorted(map[string]*string{"ETCD_INITIAL_CLUSTER_STATE": str("existing"),
		"ETCD_INITIAL_CLUSTER": str("demo-etcd-1=http://10.240.0.1:2380,demo-etcd-2=http://10.240.0.2:2380"),
		"ETCD_DEBUG":           str("true")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ApplyDropIn([]byte(seedDropIn), "", changes)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=\n", "ExecStart=/usr/lib/coreos/etcd-wrapper $ETCD_OPTS \\\n  --name=\"demo-etcd-1\" \\\n",
		"  --initial-cluster-state=existing \\\n", "  --debug=true\n", "--initial-cluster=demo-etcd-1=http://10.240.0.1:2380,demo-etcd-2=http://10.240.0.2:2380 \\\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
	again, err := ApplyDropIn(out, "", changes)
	if err != nil || string(again) != string(out) {
		t.Errorf("second write changed the drop-in (%v):\n%s", err, again)
	}
	odd := "a b\"c$HOME%n"
	changes, _ = Sorted(map[string]*string{"ETCD_DEBUG": nil, "ETCD_NAME": str(odd)})
	out, err = ApplyDropIn(out, "", changes)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := ReadDropIn(out)
	if err != nil || env["ETCD_NAME"] != odd || env["ETCD_DEBUG"] != "" || env["ETCD_INITIAL_CLUSTER_STATE"] != "existing" {
		t.Errorf("read back %v (%v) from\n%s", env, err, out)
	}
}

func TestNewDropIn(t *testing.T) {
	changes, _ := Sorted(map[string]*string{"ETCD_NAME": str("etcd4"), "ETCD_DATA_DIR": str("/var/lib/etcd/")})
	out, err := ApplyDropIn(nil, "/usr/bin/etcd", changes)
	if err != nil {
		t.Fatal(err)
	}
	want := "# etcd's flags for this member (written by etcdops.etcd etcd_member_config)\n[Service]\nExecStart=\n" +
		"ExecStart=/usr/bin/etcd \\\n  --data-dir=/var/lib/etcd/ \\\n  --name=etcd4\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if _, err := ApplyDropIn(nil, "/usr/bin/etcd --name=x", changes); err == nil {
		t.Error("a command holding flags was accepted")
	}
}

// The env-file flavour writes as lineinfile regexp=^NAME= did: the last matching line replaced, a new
// one appended (after a newline the file lacked), every line removed for null.
func TestApplyEnv(t *testing.T) {
	in := "# c\nETCD_NAME=a\nETCD_INITIAL_CLUSTER=x\n ETCD_INITIAL_CLUSTER=indented\nETCD_INITIAL_CLUSTER=y\nETCD_WAL_DIR=/w\n"
	changes, _ := Sorted(map[string]*string{"ETCD_INITIAL_CLUSTER": str("z"), "ETCD_INITIAL_CLUSTER_STATE": str("existing"),
		"ETCD_WAL_DIR": nil})
	got := string(ApplyEnv([]byte(in), changes))
	want := "# c\nETCD_NAME=a\nETCD_INITIAL_CLUSTER=x\n ETCD_INITIAL_CLUSTER=indented\nETCD_INITIAL_CLUSTER=z\nETCD_INITIAL_CLUSTER_STATE=existing\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	in = "ETCD_NAME=a"
	changes, _ = Sorted(map[string]*string{"ETCD_INITIAL_CLUSTER_STATE": str("existing")})
	if got := string(ApplyEnv([]byte(in), changes)); got != "ETCD_NAME=a\nETCD_INITIAL_CLUSTER_STATE=existing\n" {
		t.Errorf("append after a last line without newline: %q", got)
	}
	if env := ParseEnv([]byte("export ETCD_NAME=\"a b\"\nETCD_X = 'y' \n#ETCD_Z=1\n")); env["ETCD_NAME"] != "a b" || env["ETCD_X"] != "y" || len(env) != 2 {
		t.Errorf("ParseEnv: %v", env)
	}
	if _, err := Sorted(map[string]*string{"etcd_name": nil}); err == nil {
		t.Error("a lower-case name was accepted")
	}
}
