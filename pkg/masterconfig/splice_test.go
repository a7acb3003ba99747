package masterconfig

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"go.yaml.in/yaml/v3"
)

// openshift-ansible 3.8/3.9 decide that a master already runs on etcd3 with
// `grep -Pzo "storage-backend:\n.*etcd3"` and with a YAML read of storage-backend[0].
var grepDetector = regexp.MustCompile(`storage-backend:\n.*etcd3`)

func yamlDetector(t *testing.T, text string) string {
	t.Helper()
	var doc struct {
		KubernetesMasterConfig struct {
			APIServerArguments map[string][]string `yaml:"apiServerArguments"`
		} `yaml:"kubernetesMasterConfig"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("the switched file does not parse: %v\n%s", err, text)
	}
	if v := doc.KubernetesMasterConfig.APIServerArguments["storage-backend"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// The shapes master-config.yaml files of the 3.x era come in: the switch changes only the lines it adds
// (each other line keeps its bytes), openshift-ansible's detectors read etcd3 after it, and the rollback
// gives the file back byte for byte.
func TestSwitchAndRollbackAreByteExact(t *testing.T) {
	fixtures := map[string]string{
		"installer, null arguments with a trailing space": "admissionConfig:\n  pluginConfig:\n    {}\napiLevels:\n- v1\nkind: MasterConfig\nkubernetesMasterConfig:\n  apiServerArguments: \n  controllerArguments:\n  masterCount: 3\n  masterIP: 10.0.0.1\n",
		"empty arguments, end of file without newline":    "kubernetesMasterConfig:\n  masterCount: 1\n  apiServerArguments:",
		"list dashes indented, trailing spaces":           "kind: MasterConfig  \nkubernetesMasterConfig:\n  apiServerArguments:\n    event-ttl:\n      - \"1h\"   \n    kube-api-qps:   \n      - \"400\"\n  masterCount: 3\n",
		"three-space indents and a column-0 comment":      "kubernetesMasterConfig:\n   apiServerArguments:\n      event-ttl:\n      - 1h\n# column-0 comment inside the block\n      max-requests-inflight:\n      - \"500\"\n   masterCount: 3\n# the end\n",
		"CRLF line ends": "kind: MasterConfig\r\nkubernetesMasterConfig:\r\n  apiServerArguments:\r\n    event-ttl:\r\n    - \"1h\"\r\n  masterCount: 3\r\n",
		"arguments last in the file, a comment after": "kind: MasterConfig\nkubernetesMasterConfig:\n  apiServerArguments:\n    event-ttl:\n    - 1h # an hour\n\n# trailing comment\n",
	}
	for name, orig := range fixtures {
		t.Run(name, func(t *testing.T) {
			p := write(t, orig)
			if _, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3", Now: time.Unix(0, 0)}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			switched := string(b)
			// Every line of the original is still there, in order; the others are the two entries.
			var added []string
			rest := strings.SplitAfter(orig, "\n")
			if rest[len(rest)-1] == "" {
				rest = rest[:len(rest)-1]
			}
			for _, l := range strings.SplitAfter(switched, "\n") {
				if l == "" {
					continue
				}
				if len(rest) > 0 && (l == rest[0] || strings.TrimRight(l, "\r\n") == rest[0] && len(rest) == 1) {
					rest = rest[1:]
					continue
				}
				added = append(added, strings.TrimSpace(l))
			}
			if len(rest) != 0 || strings.Join(added, "|") != "storage-backend:|- etcd3|storage-media-type:|- application/vnd.kubernetes.protobuf" {
				t.Fatalf("switched file (original lines not kept: %q; added %q):\n%s", rest, added, switched)
			}
			if got := yamlDetector(t, switched); got != "etcd3" {
				t.Fatalf("YAML detector reads %q:\n%s", got, switched)
			}
			if !strings.Contains(orig, "\r\n") && !grepDetector.MatchString(switched) {
				t.Fatalf("grep detector does not match:\n%s", switched)
			}
			if _, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd2", Now: time.Unix(1, 0)}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(p); string(b) != orig {
				t.Fatalf("after the rollback:\n%q\nwant:\n%q", b, orig)
			}
		})
	}
}

// An existing storage-backend keeps its line and its quoting: only the value's text changes; a flow
// list changes in place; a flow-style apiServerArguments holding arguments is refused unchanged.
func TestSwitchEditsExistingValuesInPlace(t *testing.T) {
	for name, tc := range map[string]struct{ orig, want string }{
		"quoted block list": {
			"kubernetesMasterConfig:\n  apiServerArguments:\n    storage-backend:\n    - \"etcd2\" # was\n    storage-media-type:\n    - application/json\n",
			"kubernetesMasterConfig:\n  apiServerArguments:\n    storage-backend:\n    - \"etcd3\" # was\n    storage-media-type:\n    - application/vnd.kubernetes.protobuf\n"},
		"flow lists": {
			"kubernetesMasterConfig:\n  apiServerArguments:\n    storage-backend: [etcd2]\n    event-ttl: [1h]\n",
			"kubernetesMasterConfig:\n  apiServerArguments:\n    storage-backend: [etcd3]\n    event-ttl: [1h]\n    storage-media-type:\n    - application/vnd.kubernetes.protobuf\n"},
	} {
		t.Run(name, func(t *testing.T) {
			ensureGives(t, tc.orig, Spec{StorageBackend: "etcd3", Now: time.Unix(0, 0)}, tc.want)
		})
	}
	flow := "kubernetesMasterConfig:\n  apiServerArguments: {event-ttl: [1h]}\n"
	p := write(t, flow)
	if _, err := Ensure(&module.Task{}, Spec{Path: p, StorageBackend: "etcd3"}); err == nil || !strings.Contains(err.Error(), "flow style") {
		t.Fatalf("flow apiServerArguments: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != flow {
		t.Fatalf("changed:\n%s", b)
	}
}

// etcdClientInfo.urls: a block list's item lines are replaced at its own dash column, a flow list in place,
// a missing key added after the mapping's last entry; the lines around stay as they were.
func TestSetEtcdURLsKeepsOtherLines(t *testing.T) {
	urls := []string{"https://10.0.0.4:2379", "https://10.0.0.5:2379"}
	for name, tc := range map[string]struct{ orig, want string }{
		"indented block list": {
			"etcdClientInfo:\n   ca: ca.crt  \n   urls:\n     - https://10.0.0.1:2379 # old\n     - https://10.0.0.2:2379\n# column 0\nkind: MasterConfig\n",
			"etcdClientInfo:\n   ca: ca.crt  \n   urls:\n     - https://10.0.0.4:2379\n     - https://10.0.0.5:2379\n# column 0\nkind: MasterConfig\n"},
		"flow list": {
			"etcdClientInfo:\n  urls: [https://10.0.0.1:2379] # members\nkind: MasterConfig\n",
			"etcdClientInfo:\n  urls: [https://10.0.0.4:2379, https://10.0.0.5:2379] # members\nkind: MasterConfig\n"},
		"no urls key": {
			"etcdClientInfo:\n  ca: ca.crt\n  certFile: master.etcd-client.crt\nkind: MasterConfig\n",
			"etcdClientInfo:\n  ca: ca.crt\n  certFile: master.etcd-client.crt\n  urls:\n  - https://10.0.0.4:2379\n  - https://10.0.0.5:2379\nkind: MasterConfig\n"},
	} {
		t.Run(name, func(t *testing.T) { ensureGives(t, tc.orig, Spec{EtcdURLs: urls, Now: time.Unix(0, 0)}, tc.want) })
	}
}

// ensureGives runs Ensure with spec on a file holding orig and checks the file then holds want.
func ensureGives(t *testing.T, orig string, spec Spec, want string) {
	t.Helper()
	spec.Path = write(t, orig)
	if _, err := Ensure(&module.Task{}, spec); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(spec.Path); string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
}
