package modules

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// badCase is one bad input: the module, its arguments, and what the failure message must say
// (the option it names and the fix).
type badCase struct {
	name   string
	module string
	args   map[string]any
	wants  []string
	env    map[string]string
}

// Issue 19, bad input: every module, every kind of mistake (wrong type, unknown option, out of range,
// malformed endpoint, unreadable or wrong CA / certificate / key, unreachable cluster, wrong
// credentials, a non-YAML master-config, a truncated snapshot, a corrupt state file, ...) fails with a
// message naming the option and the fix, without a Go stack trace or the password, and nothing
// changes: members, keys, leases and every file of the work directory are the same afterwards. One
// cluster (auth on) and one ansible-playbook run for the whole table.
func TestBadInputTable(t *testing.T) {
	c := etcdtest.NewCluster(t, 1)
	const password = "pw-Very-Secret-42"
	cli := c.Client(t)
	ctx := context.Background() // each request below has its own deadline (observe, saveSnapshot)
	for _, k := range []string{"/kubernetes.io/pods/a", "/openshift.io/users/u"} {
		if _, err := cli.Put(ctx, k, "v-"+k); err != nil {
			t.Fatal(err)
		}
	}
	c.EnableAuth(t, password)

	work := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pkiDir := filepath.Join(work, "other-pki")
	strangerCert, strangerKey := foreignPKI(t, pkiDir)
	notPEM := write("not-pem.crt", "this is not a certificate\n")
	garbageKey := write("garbage.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	unreadable := filepath.Join(work, "other-pki") // a directory: unreadable as a file, even for root
	notYAML := write("masters/not-yaml.yaml", "kubernetesMasterConfig: [unclosed\n\tapiServerArguments: {\n")
	noKMC := write("masters/no-kmc.yaml", "etcdClientInfo:\n  urls:\n  - https://10.0.0.1:2379\n")
	scalarAPI := write("masters/scalar-api.yaml", "kubernetesMasterConfig:\n  apiServerArguments: storage-backend\n")
	good := write("masters/master-config.yaml", masterConfig)
	snap := filepath.Join(work, "snapshots", "good.db")
	if err := os.MkdirAll(filepath.Dir(snap), 0o700); err != nil {
		t.Fatal(err)
	}
	saveSnapshot(t, ctx, cli, snap)
	full, _ := os.ReadFile(snap)
	truncated := write("snapshots/truncated.db", string(full[:len(full)/3]))
	corruptState := write("state/migration-state.json", `{"status": "offline", "backup": `)
	stateFile := write("state/ok-state.json", `{"status": "offline", "backup": "b-1"}`)
	emptyDataDir := filepath.Join(work, "empty-data")
	if err := os.MkdirAll(emptyDataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	backupDir := filepath.Join(work, "backups")
	restoreDir := filepath.Join(work, "restored")
	runDir := filepath.Join(work, "run-units")

	ep := c.Members[0].ClientURL
	localhostEP := strings.Replace(ep, "127.0.0.1", "localhost", 1)
	conn := c.Args()
	auth := withArgs(conn, map[string]any{"user": "root", "password": password, "dial_timeout": "2s", "command_timeout": "5s"})
	// Generous timeouts where the password is checked: bcrypt is slow on a loaded machine, and a
	// timeout would hide the "check user and password" explanation.
	slow := map[string]any{"dial_timeout": "20s", "command_timeout": "30s"}
	connDict := func(extra map[string]any) map[string]any { return withArgs(conn, extra) }
	restore := map[string]any{"state": "restored", "path": snap, "data_dir": restoreDir, "name": "etcd1",
		"initial_cluster": "etcd1=https://127.0.0.1:2380", "initial_cluster_token": "t-1"}
	copyArgs := func(extra map[string]any) map[string]any {
		return withArgs(map[string]any{"source": connDict(nil), "destination": connDict(nil), "target_api": "v3",
			"prefixes": "/kubernetes.io"}, extra)
	}
	temp := func(extra map[string]any) map[string]any {
		return withArgs(map[string]any{"data_dir": filepath.Join(work, "temp-member"), "client_url": "https://127.0.0.1:3000",
			"peer_url": "https://127.0.0.1:2999", "cert_file": c.Cert, "key_file": c.Key, "trusted_ca_file": c.CACert,
			"peer_cert_file": c.Cert, "peer_key_file": c.Key, "peer_trusted_ca_file": c.CACert,
			"client_cert": c.Cert, "client_key": c.Key}, extra)
	}

	cases := []badCase{
		// The shared connection options, through several modules.
		{"unknown option", "etcd_cluster_info", withArgs(auth, map[string]any{"endpoint": ep}),
			[]string{"endpoint", "unsupported parameter", "endpoints"}, nil},
		{"wrong type bool", "etcd_cluster_info", withArgs(auth, map[string]any{"v2": "perhaps"}),
			[]string{"parameter v2", "boolean"}, nil},
		{"wrong type list of dicts", "etcd_cluster_info", withArgs(auth, map[string]any{"v3_prefixes": map[string]any{"a": 1}}),
			[]string{"v3_prefixes", "list"}, nil},
		{"v2_data_dir without v2", "etcd_cluster_info", withArgs(auth, map[string]any{"v2_data_dir": "/var/lib/etcd"}),
			[]string{"v2_data_dir", "v2=true"}, nil},
		{"v2_data_dir not a data dir", "etcd_cluster_info", withArgs(auth, map[string]any{"v2": true, "v2_data_dir": "/tmp"}),
			[]string{"v2_data_dir", "no member/", "ETCD_DATA_DIR"}, nil},
		{"duration not a duration", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "dial_timeout": "soon"}),
			[]string{"parameter dial_timeout", "10s"}, nil},
		{"zero command timeout", "etcd_cluster_info", withArgs(auth, map[string]any{"command_timeout": "0s"}),
			[]string{"parameter command_timeout", "greater than 0"}, nil},
		{"endpoint without scheme", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "endpoints": "127.0.0.1:2379"}),
			[]string{"parameter endpoints", "https://10.0.0.1:2379"}, nil},
		{"endpoint without port", "etcd_cluster_info", withArgs(auth, map[string]any{"endpoints": "https://127.0.0.1"}),
			[]string{"parameter endpoints", "no port", ":2379"}, nil},
		{"endpoint port out of range", "etcd_convergence_wait", withArgs(auth, map[string]any{"endpoints": "https://127.0.0.1:99999"}),
			[]string{"parameter endpoints", "1-65535", ":2379"}, nil},
		{"endpoint not a URL", "etcd_ttl_leases", withArgs(auth, map[string]any{"endpoints": "https://[::1"}),
			[]string{"parameter endpoints", "not a URL"}, nil},
		{"http endpoint with TLS options", "etcd_cluster_info", withArgs(auth, map[string]any{"endpoints": strings.Replace(ep, "https", "http", 1)}),
			[]string{"parameter endpoints", "use https://"}, nil},
		{"password in the endpoint URL", "etcd_member", withArgs(auth, map[string]any{"state": "absent", "name": "x", "endpoints": strings.Replace(ep, "//", "//root:"+password+"@", 1)}),
			[]string{"parameter endpoints", "carries credentials", "user and password"}, nil},
		{"user:password in user", "etcd_cluster_info", withArgs(auth, map[string]any{"user": "root:" + password}),
			[]string{"parameter user", "password"}, nil},
		{"missing CA file", "etcd_cluster_info", withArgs(auth, map[string]any{"ca_cert": "/nonexistent/ca.crt"}),
			[]string{"parameter ca_cert", "/nonexistent/ca.crt", "check the path"}, nil},
		{"unreadable CA file", "etcd_ttl_leases", withArgs(auth, map[string]any{"ca_cert": unreadable}),
			[]string{"ca_cert", unreadable}, nil},
		{"CA file not PEM", "etcd_cluster_info", withArgs(auth, map[string]any{"ca_cert": notPEM}),
			[]string{"parameter ca_cert", "no PEM certificate", "/etc/etcd/ca.crt"}, nil},
		{"wrong CA", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "ca_cert": filepath.Join(pkiDir, "ca.crt")}),
			[]string{"ca_cert does not sign the server's certificate", "/etc/etcd/ca.crt"}, nil},
		{"client cert from another CA", "etcd_cluster_info", withArgs(auth, map[string]any{"client_cert": strangerCert, "client_key": strangerKey}),
			[]string{"client_cert/client_key", "signed by the etcd client CA"}, nil},
		{"client cert without key", "etcd_cluster_info", withArgs(auth, map[string]any{"client_key": nil}),
			[]string{"parameter client_cert", "set both or neither"}, nil},
		{"client key not a key", "etcd_snapshot", withArgs(auth, map[string]any{"state": "saved", "path": filepath.Join(backupDir, "s.db"), "client_key": garbageKey}),
			[]string{"parameter client_cert", "cannot load the key pair", garbageKey}, nil},
		{"client key of another certificate", "etcd_cluster_info", withArgs(auth, map[string]any{"client_key": strangerKey}),
			[]string{"parameter client_cert", "cannot load the key pair"}, nil},
		{"unreachable cluster", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "endpoints": "https://127.0.0.1:1"}),
			[]string{"https://127.0.0.1:1", "nothing listens there"}, nil},
		{"wrong password", "etcd_cluster_info", withArgs(auth, slow, map[string]any{"password": "not-" + password}),
			[]string{"check user and password"}, nil},
		{"unknown user", "etcd_ttl_leases", withArgs(auth, slow, map[string]any{"user": "nobody"}),
			[]string{"check user and password"}, nil},
		{"wrong password from ETCDCTL_PASSWORD", "etcd_cluster_info", withArgs(auth, slow, map[string]any{"password": nil}),
			[]string{"check user and password"}, map[string]string{"ETCDCTL_PASSWORD": "env-" + password}},

		// etcd_member
		{"member choice", "etcd_member", withArgs(auth, map[string]any{"state": "gone", "name": "x"}),
			[]string{"state", "present", "absent"}, nil},
		{"member peer port out of range", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:99999"}),
			[]string{"parameter peer_urls", "99999"}, nil},
		{"member peer URL without scheme", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "127.0.0.9:2380"}),
			[]string{"parameter peer_urls"}, nil},
		{"member present without peer_urls", "etcd_member", withArgs(auth, map[string]any{"name": "x"}),
			[]string{"parameter peer_urls", "is required with state: present"}, nil},
		{"member id not hex", "etcd_member", withArgs(auth, map[string]any{"state": "absent", "id": "zz-top"}),
			[]string{"parameter id", "hex", "etcdctl member list"}, nil},
		{"member learner choice", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "learner": "maybe"}),
			[]string{"learner", "auto"}, nil},
		{"member zero timeout", "etcd_member", withArgs(auth, map[string]any{"name": "x", "peer_urls": "https://127.0.0.9:2380", "timeout": 0}),
			[]string{"parameter timeout", "greater than 0"}, nil},

		// etcd_snapshot
		{"snapshot without state", "etcd_snapshot", withArgs(auth, map[string]any{"path": snap}),
			[]string{"state", "required"}, nil},
		{"snapshot negative keep", "etcd_snapshot", withArgs(auth, map[string]any{"state": "saved", "path": filepath.Join(backupDir, "s.db"), "keep": -1}),
			[]string{"parameter keep"}, nil},
		{"snapshot keep not an int", "etcd_snapshot", withArgs(auth, map[string]any{"state": "saved", "path": filepath.Join(backupDir, "s.db"), "keep": "three"}),
			[]string{"keep", "int"}, nil},
		{"status of a truncated snapshot", "etcd_snapshot", map[string]any{"state": "status", "path": truncated},
			[]string{truncated}, nil},
		{"restore of a truncated snapshot", "etcd_snapshot", withArgs(restore, map[string]any{"path": truncated}),
			[]string{truncated}, nil},
		{"restore name not in initial_cluster", "etcd_snapshot", withArgs(restore, map[string]any{"name": "etcd9"}),
			[]string{"parameter name", "initial_cluster"}, nil},
		{"restore without token", "etcd_snapshot", withArgs(restore, map[string]any{"initial_cluster_token": ""}),
			[]string{"parameter initial_cluster_token"}, nil},

		// etcd_backup
		{"backup without name", "etcd_backup", map[string]any{"data_dir": emptyDataDir, "backup_dir": backupDir, "snapshot": false},
			[]string{"name", "required"}, nil},
		{"backup of a dir without a member", "etcd_backup", map[string]any{"name": "b1", "data_dir": emptyDataDir, "backup_dir": backupDir, "snapshot": false},
			[]string{"parameter data_dir", emptyDataDir}, nil},
		{"backup name with a slash", "etcd_backup", map[string]any{"name": "../../etc", "data_dir": emptyDataDir, "backup_dir": backupDir, "snapshot": false},
			[]string{"parameter name"}, nil},
		{"backup stop marker without a service", "etcd_backup", map[string]any{"name": "b1", "data_dir": emptyDataDir, "backup_dir": backupDir, "snapshot": false, "stop_marker": "/run/x"},
			[]string{"parameter stop_marker", "with stop_service only"}, nil},
		{"backup live with a stop", "etcd_backup", map[string]any{"name": "b1", "data_dir": emptyDataDir, "backup_dir": backupDir, "live": true, "stop_service": "etcd"},
			[]string{"parameter live", "give one of them"}, nil},
		{"backup live without a snapshot", "etcd_backup", map[string]any{"name": "b1", "data_dir": emptyDataDir, "backup_dir": backupDir, "live": true, "snapshot": false},
			[]string{"parameter live", "snapshot and copy_data_dir"}, nil},
		{"backup state choice", "etcd_backup", map[string]any{"name": "b1", "state": "absent", "data_dir": emptyDataDir, "backup_dir": backupDir},
			[]string{"state", "present", "restored"}, nil},

		// etcd_member_config
		{"member-config relative path", "etcd_member_config", map[string]any{"path": "etc/etcd/etcd.conf", "state": "present", "settings": map[string]any{"ETCD_NAME": "m1"}},
			[]string{"parameter path", "absolute path"}, nil},
		{"member-config drop-in not .conf", "etcd_member_config", map[string]any{"path": filepath.Join(work, "20-etcd.txt"), "flavour": "dropin", "state": "present", "settings": map[string]any{"ETCD_NAME": "m1"}},
			[]string{"parameter path", ".conf"}, nil},
		{"member-config flavour choice", "etcd_member_config", map[string]any{"path": filepath.Join(work, "etcd.conf"), "flavour": "yaml"},
			[]string{"flavour", "env_file", "dropin"}, nil},
		{"member-config unit outside systemd's names", "etcd_member_config", map[string]any{"path": filepath.Join(work, "etcd.conf"), "unit": "../../../tmp/x"},
			[]string{"parameter unit", "not a valid systemd unit name"}, nil},

		// etcd_master_config
		{"master-config not YAML", "etcd_master_config", map[string]any{"path": notYAML, "storage_backend": "etcd3"},
			[]string{notYAML, "YAML"}, nil},
		{"master-config without kubernetesMasterConfig", "etcd_master_config", map[string]any{"path": noKMC, "storage_backend": "etcd3"},
			[]string{noKMC, "kubernetesMasterConfig"}, nil},
		{"master-config apiServerArguments a scalar", "etcd_master_config", map[string]any{"path": scalarAPI, "storage_backend": "etcd3"},
			[]string{scalarAPI, "apiServerArguments"}, nil},
		{"master-config missing file", "etcd_master_config", map[string]any{"path": filepath.Join(work, "masters/none.yaml"), "storage_backend": "etcd3"},
			[]string{"parameter path", "does not exist"}, nil},
		{"master-config backend choice", "etcd_master_config", map[string]any{"path": good, "storage_backend": "etcd4"},
			[]string{"storage_backend", "etcd3", "etcd2"}, nil},
		{"master-config URL with credentials", "etcd_master_config", map[string]any{"path": good, "etcd_urls": "https://root:" + password + "@10.0.0.1:2379"},
			[]string{"parameter etcd_urls", "carries credentials"}, nil},
		{"master-config URL without scheme", "etcd_master_config", map[string]any{"path": good, "etcd_urls": "10.0.0.1:2379"},
			[]string{"parameter etcd_urls"}, nil},

		// etcd_force_new_cluster
		{"force-new unit name", "etcd_force_new_cluster", withArgs(auth, map[string]any{"service": "../../../tmp/x", "runtime_unit_dir": runDir}),
			[]string{"parameter service", "not a valid systemd unit name"}, nil},
		{"force-new cluster_endpoints without scheme", "etcd_force_new_cluster", withArgs(auth, map[string]any{"runtime_unit_dir": runDir, "cluster_endpoints": "10.0.0.2"}),
			[]string{"parameter cluster_endpoints"}, nil},
		{"force-new two endpoints", "etcd_force_new_cluster", withArgs(auth, map[string]any{"runtime_unit_dir": runDir, "endpoints": []any{ep, ep}}),
			[]string{"parameter endpoints"}, nil},

		// etcd_run_state
		{"run state relative path", "etcd_run_state", map[string]any{"path": "state.json"},
			[]string{"parameter path", "absolute"}, nil},
		{"run state recorded without status", "etcd_run_state", map[string]any{"path": stateFile, "state": "recorded"},
			[]string{"parameter status", "is required"}, nil},
		{"run state data sets status", "etcd_run_state", map[string]any{"path": stateFile, "state": "recorded", "status": "x", "data": map[string]any{"status": "y"}},
			[]string{"parameter data", "status"}, nil},
		{"run state corrupt file", "etcd_run_state", map[string]any{"path": corruptState, "state": "recorded", "status": "online"},
			[]string{corruptState}, nil},
		{"run state archive suffix", "etcd_run_state", map[string]any{"path": stateFile, "state": "archived", "archive_suffix": "a/b"},
			[]string{"parameter archive_suffix"}, nil},

		// etcd_v2_migrate
		{"v2 migrate no data dir", "etcd_v2_migrate", map[string]any{},
			[]string{"parameter data_dir", "is required"}, nil},
		{"v2 migrate relative data dir", "etcd_v2_migrate", map[string]any{"data_dir": "var/lib/etcd"},
			[]string{"parameter data_dir", "absolute path"}, nil},
		{"v2 migrate not a member's data dir", "etcd_v2_migrate", map[string]any{"data_dir": filepath.Join(work, "state")},
			[]string{"data_dir", "holds no member/wal", "stopped member's data dir"}, nil},
		{"v2 migrate unknown option", "etcd_v2_migrate", map[string]any{"data_dir": "/var/lib/etcd", "wal_dir": "/x"},
			[]string{"wal_dir"}, nil},
		{"v2 migrate term without index", "etcd_v2_migrate", map[string]any{"data_dir": "/var/lib/etcd", "term": 3},
			[]string{"parameter term", "give index too"}, nil},
		{"v2 migrate negative index", "etcd_v2_migrate", map[string]any{"data_dir": "/var/lib/etcd", "index": -1},
			[]string{"index"}, nil},
		{"v2 migrate negative now", "etcd_v2_migrate", map[string]any{"data_dir": "/var/lib/etcd", "now": -5},
			[]string{"parameter now", "date +%s"}, nil},

		// etcd_raft_log_info
		{"raft log relative data dir", "etcd_raft_log_info", map[string]any{"data_dir": "var/lib/etcd"},
			[]string{"parameter data_dir", "absolute path"}, nil},
		{"raft log not a member's data dir", "etcd_raft_log_info", map[string]any{"data_dir": filepath.Join(work, "state")},
			[]string{"data_dir", "holds no etcd WAL"}, nil},

		// etcd_units (validated before systemd is reached)
		{"service unit outside systemd's names", "etcd_units", map[string]any{"name": []any{"atomic-openshift-master-api", "../../../tmp/x"}, "state": "stopped"},
			[]string{"parameter name", "not a valid systemd unit name"}, nil},
		{"service glob", "etcd_units", map[string]any{"name": "origin-master-*", "state": "started"},
			[]string{"parameter name", "not a valid systemd unit name"}, nil},
		{"service no unit", "etcd_units", map[string]any{"name": []any{}, "state": "started"},
			[]string{"parameter name", "at least one unit"}, nil},
		{"service state choice", "etcd_units", map[string]any{"name": "etcd", "state": "restarted"},
			[]string{"state", "started", "stopped"}, nil},
		{"service marker relative", "etcd_units", map[string]any{"name": "etcd", "state": "stopped", "marker": "run/x"},
			[]string{"parameter marker", "an absolute path"}, nil},
		{"service settle negative", "etcd_units", map[string]any{"name": "etcd", "state": "started", "settle": "-3s"},
			[]string{"parameter settle", "must not be negative"}, nil},

		// etcd_ttl_leases
		{"leases slash prefix", "etcd_ttl_leases", withArgs(auth, map[string]any{"prefixes": []any{map[string]any{"prefix": "/", "ttl": 10}}}),
			[]string{"parameter prefixes[0].prefix", "covers every key"}, nil},
		{"leases empty list", "etcd_ttl_leases", withArgs(auth, map[string]any{"prefixes": []any{}}),
			[]string{"parameter prefixes", "empty list"}, nil},
		{"leases ttl under 1s", "etcd_ttl_leases", withArgs(auth, map[string]any{"prefixes": []any{map[string]any{"prefix": "/a", "ttl": "500ms"}}}),
			[]string{"parameter prefixes[0].ttl", "at least 1s"}, nil},
		{"leases max_txn_ops 0", "etcd_ttl_leases", withArgs(auth, map[string]any{"max_txn_ops": 0}),
			[]string{"parameter max_txn_ops", "at least 1"}, nil},
		{"leases unknown suboption", "etcd_ttl_leases", withArgs(auth, map[string]any{"prefixes": []any{map[string]any{"prefix": "/a", "ttl": 10, "tll": 5}}}),
			[]string{"tll", "prefixes"}, nil},

		// etcd_v2_copy
		{"copy negative leases_granted_at", "etcd_v2_copy", map[string]any{"source": connDict(nil), "destination": connDict(nil), "target_api": "v3", "leases_granted_at": -1},
			[]string{"parameter leases_granted_at", "seconds since 1970"}, nil},
		{"copy without source", "etcd_v2_copy", map[string]any{"destination": connDict(nil), "target_api": "v3"},
			[]string{"source", "required"}, nil},
		{"copy target_api choice", "etcd_v2_copy", copyArgs(map[string]any{"target_api": "v4"}),
			[]string{"target_api", "v2", "v3"}, nil},
		{"copy source endpoint malformed", "etcd_v2_copy", copyArgs(map[string]any{"source": connDict(map[string]any{"endpoints": "etcd1:2379"})}),
			[]string{"parameter source.endpoints"}, nil},
		{"copy destination CA missing", "etcd_v2_copy", copyArgs(map[string]any{"destination": connDict(map[string]any{"ca_cert": "/nonexistent/ca.crt"})}),
			[]string{"parameter destination.ca_cert", "check the path"}, nil},
		{"copy max_txn_ops 0", "etcd_v2_copy", copyArgs(map[string]any{"max_txn_ops": 0}),
			[]string{"parameter max_txn_ops"}, nil},
		{"copy source_data_dir without a member", "etcd_v2_copy", copyArgs(map[string]any{"source_data_dir": emptyDataDir}),
			[]string{"source_data_dir", emptyDataDir}, nil},
		{"copy source unreachable", "etcd_v2_copy", copyArgs(map[string]any{"source": connDict(map[string]any{"endpoints": "https://127.0.0.1:1"})}),
			[]string{"source: https://127.0.0.1:1", "nothing listens there", "source.endpoints"}, nil},
		// A v2 destination is the same member by another name its certificate lists (localhost): reachable,
		// refused as the source's own cluster when everything else is right, and otherwise refused for the
		// option under test first (the cluster is known only from an answer).
		{"copy v2 destination the source by another name", "etcd_v2_copy", copyArgs(map[string]any{"target_api": "v2",
			"destination": connDict(map[string]any{"endpoints": localhostEP})}),
			[]string{"parameter destination.endpoints", localhostEP + " reach the source's own cluster (cluster ID ", "target_api: v3"}, nil},
		{"copy v2 destination unreachable", "etcd_v2_copy", copyArgs(map[string]any{"target_api": "v2",
			"destination": connDict(map[string]any{"endpoints": "https://127.0.0.1:1"})}),
			[]string{"destination: https://127.0.0.1:1", "nothing listens there", "destination.endpoints"}, nil},
		{"copy v2 destination wrong CA", "etcd_v2_copy", copyArgs(map[string]any{"target_api": "v2",
			"destination": connDict(map[string]any{"endpoints": localhostEP, "ca_cert": filepath.Join(pkiDir, "ca.crt")})}),
			[]string{"destination: " + localhostEP, "destination.ca_cert does not sign the server's certificate"}, nil},
		{"copy v2 destination client cert from another CA", "etcd_v2_copy", copyArgs(map[string]any{"target_api": "v2",
			"destination": connDict(map[string]any{"endpoints": localhostEP, "client_cert": strangerCert, "client_key": strangerKey})}),
			[]string{"destination: " + localhostEP, "destination.client_cert/destination.client_key"}, nil},

		// etcd_convergence_wait
		{"convergence stable_polls 0", "etcd_convergence_wait", withArgs(auth, map[string]any{"stable_polls": 0}),
			[]string{"parameter stable_polls"}, nil},
		{"convergence negative tolerance", "etcd_convergence_wait", withArgs(auth, map[string]any{"tolerance": -1}),
			[]string{"tolerance"}, nil},

		// etcd_temp_member
		{"temp member relative data dir", "etcd_temp_member", temp(map[string]any{"data_dir": "temp"}),
			[]string{"parameter data_dir", "absolute"}, nil},
		{"temp member client URL without port", "etcd_temp_member", temp(map[string]any{"client_url": "https://127.0.0.1"}),
			[]string{"parameter client_url"}, nil},
		{"temp member same ports", "etcd_temp_member", temp(map[string]any{"peer_url": "https://127.0.0.1:3000"}),
			[]string{"parameter peer_url", "own port"}, nil},
		{"temp member missing key file", "etcd_temp_member", temp(map[string]any{"key_file": "/nonexistent/server.key"}),
			[]string{"parameter key_file", "check the path"}, nil},
	}

	before := observe(t, ctx, cli, work)
	var calls []ansibletest.Call
	for _, tc := range cases {
		calls = append(calls, ansibletest.Call{Name: tc.name, Module: tc.module, Args: tc.args, Env: tc.env})
	}
	results := ansibletest.Modules(t, calls)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, ok := results[tc.name]
			if !ok {
				t.Fatalf("no result")
			}
			b, _ := json.Marshal(res)
			if !res.Failed() || res.Changed() {
				t.Fatalf("failed=%v changed=%v, want a refusal: %s", res.Failed(), res.Changed(), b)
			}
			for _, w := range tc.wants {
				if !strings.Contains(res.Msg(), w) {
					t.Errorf("msg lacks %q: %s", w, res.Msg())
				}
			}
			for _, bad := range []string{"panic", "goroutine ", ".go:", "MODULE FAILURE", "Traceback", password} {
				if bytes.Contains(b, []byte(bad)) {
					t.Errorf("result holds %q: %s", bad, b)
				}
			}
		})
	}
	if after := observe(t, ctx, cli, work); after != before {
		t.Errorf("the bad input changed something:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("%d cases", len(cases))
}

// saveSnapshot writes the cluster's snapshot to path.
func saveSnapshot(t *testing.T, ctx context.Context, cli *clientv3.Client, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// observe describes what bad input must not change: members, every key and value, leases, and every
// file under dir (path, mode, sha256).
func observe(t *testing.T, ctx context.Context, cli *clientv3.Client, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []string
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		out = append(out, fmt.Sprintf("member %x %s %v learner=%v", m.ID, m.Name, m.PeerURLs, m.IsLearner))
	}
	kv, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf("revision %d", kv.Header.Revision))
	for _, k := range kv.Kvs {
		out = append(out, fmt.Sprintf("key %s=%s lease %d", k.Key, k.Value, k.Lease))
	}
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf("leases %d", len(leases.Leases)))
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("file %s %v", strings.TrimPrefix(p, dir), info.Mode())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
