package memberconf

import (
	"strings"
	"testing"
)

func str(s string) *string { return &s }

func sortedChanges(settings map[string]*string) ([]Change, error) {
	return sortedAs(settings, validName, "is no ETCD_* name")
}

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
	changes, err := sortedChanges(map[string]*string{"ETCD_INITIAL_CLUSTER_STATE": str("existing"),
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
	changes, _ = sortedChanges(map[string]*string{"ETCD_DEBUG": nil, "ETCD_NAME": str(odd)})
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
	changes, _ := sortedChanges(map[string]*string{"ETCD_NAME": str("etcd4"), "ETCD_DATA_DIR": str("/var/lib/etcd/")})
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
	changes, _ := sortedChanges(map[string]*string{"ETCD_INITIAL_CLUSTER": str("z"), "ETCD_INITIAL_CLUSTER_STATE": str("existing"),
		"ETCD_WAL_DIR": nil})
	got := string(ApplyEnv([]byte(in), changes))
	want := "# c\nETCD_NAME=a\nETCD_INITIAL_CLUSTER=x\n ETCD_INITIAL_CLUSTER=indented\nETCD_INITIAL_CLUSTER=z\nETCD_INITIAL_CLUSTER_STATE=existing\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	in = "ETCD_NAME=a"
	changes, _ = sortedChanges(map[string]*string{"ETCD_INITIAL_CLUSTER_STATE": str("existing")})
	if got := string(ApplyEnv([]byte(in), changes)); got != "ETCD_NAME=a\nETCD_INITIAL_CLUSTER_STATE=existing\n" {
		t.Errorf("append after a last line without newline: %q", got)
	}
	if env := ParseEnv([]byte("export ETCD_NAME=\"a b\"\nETCD_X = 'y' \n#ETCD_Z=1\n")); env["ETCD_NAME"] != "a b" || env["ETCD_X"] != "y" || len(env) != 2 {
		t.Errorf("ParseEnv: %v", env)
	}
	if _, err := sortedChanges(map[string]*string{"etcd_name": nil}); err == nil {
		t.Error("a lower-case name was accepted")
	}
}

// Seed 003's StorageOS unit: the flags in etcd3.service's ExecStart, "--flag value" words, the node
// addresses and ports from /etc/etcd.conf.
const seedUnit = `[Unit]
Description=etcd3

[Service]
Type=notify
EnvironmentFile=/etc/etcd.conf
Environment="ETCD_UNSUPPORTED_ARCH=amd64"
ExecStart=/usr/local/sbin/etcd3 --name etcd-${NODE_IP} \
    --data-dir /var/lib/storageos-etcd \
    --initial-cluster-state new \
    --listen-client-urls http://${NODE_IP}:${CLIENT_PORT},http://127.0.0.1:${CLIENT_PORT} \
    --advertise-client-urls http://${NODE_IP}:${CLIENT_PORT} \
    --initial-advertise-peer-urls http://${NODE_IP}:${PEERS_PORT} \
    --initial-cluster etcd-${NODE1_IP}=http://${NODE1_IP}:${PEERS_PORT},etcd-${NODE2_IP}=http://${NODE2_IP}:${PEERS_PORT}

[Install]
WantedBy=multi-user.target
`

// The seed's new node: /etc/etcd.conf of every node's address, the unit read as systemd expands it;
// its initial cluster written as the current members plus itself, state existing: the flags name the
// variables as the seed's do, and read back as the values.
func TestApplyUnitFlags(t *testing.T) {
	conf := "# NODE_IP is the IP of the node where this file resides.\nNODE_IP=192.168.152.142\nNODE1_IP=192.168.195.168\n" +
		"NODE2_IP=192.168.202.40\nNODE4_IP=192.168.152.142\nNODE12_IP=192.168.152.14\nCLIENT_PORT=2379\nPEERS_PORT=2380\n"
	read := func(path string) ([]byte, error) {
		if path != "/etc/etcd.conf" {
			t.Errorf("read %s", path)
		}
		return []byte(conf), nil
	}
	f, err := ApplyFlags([]byte(seedUnit), "", nil, read)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ETCD_NAME": "etcd-192.168.152.142", "ETCD_DATA_DIR": "/var/lib/storageos-etcd",
		"ETCD_LISTEN_CLIENT_URLS":    "http://192.168.152.142:2379,http://127.0.0.1:2379",
		"ETCD_INITIAL_CLUSTER":       "etcd-192.168.195.168=http://192.168.195.168:2380,etcd-192.168.202.40=http://192.168.202.40:2380",
		"ETCD_INITIAL_CLUSTER_STATE": "new"}
	for k, v := range want {
		if f.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, f.Env[k], v)
		}
	}
	if f.Command != "/usr/local/sbin/etcd3" || string(f.Data) != seedUnit {
		t.Errorf("command %q; read changed the text:\n%s", f.Command, f.Data)
	}
	ic := "etcd-192.168.195.168=http://192.168.195.168:2380,etcd-192.168.202.40=http://192.168.202.40:2380," +
		"etcd-192.168.152.142=http://192.168.152.142:2380,etcd-192.168.152.14=http://192.168.152.14:2380"
	changes, _ := sortedChanges(map[string]*string{"ETCD_INITIAL_CLUSTER": str(ic), "ETCD_INITIAL_CLUSTER_STATE": str("existing"),
		"ETCD_NAME": str("etcd-192.168.152.142"), "ETCD_DEBUG": str("a $b")})
	f, err = ApplyFlags([]byte(seedUnit), "", changes, read)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ExecStart=/usr/local/sbin/etcd3 \\\n  --name etcd-${NODE_IP} \\\n", "--initial-cluster-state=existing \\\n",
		"--initial-cluster=etcd-${NODE1_IP}=http://${NODE1_IP}:${PEERS_PORT},etcd-${NODE2_IP}=http://${NODE2_IP}:${PEERS_PORT}," +
			"etcd-${NODE4_IP}=http://${NODE4_IP}:${PEERS_PORT},etcd-${NODE12_IP}=http://${NODE12_IP}:${PEERS_PORT} \\\n",
		`"--debug=a $$b"`, "EnvironmentFile=/etc/etcd.conf\n", "[Install]\nWantedBy=multi-user.target\n"} {
		if !strings.Contains(string(f.Data), w) {
			t.Errorf("want %q in\n%s", w, f.Data)
		}
	}
	if f.Env["ETCD_INITIAL_CLUSTER"] != ic || f.Env["ETCD_DEBUG"] != "a $b" {
		t.Errorf("written %v", f.Env)
	}
	again, err := ApplyFlags(f.Data, "", changes, read)
	if err != nil || string(again.Data) != string(f.Data) || again.Env["ETCD_INITIAL_CLUSTER"] != ic {
		t.Errorf("read back (%v) %v:\n%s", err, again.Env, again.Data)
	}
}
