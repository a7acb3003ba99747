package modules

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"go.yaml.in/yaml/v3"
)

// Every sidecar doc in plugins/modules/ renders with ansible-doc (the installed ansible-core), with
// the connection fragment merged in, examples that use the FQCN, and documented return keys.
func TestSidecarDocsRender(t *testing.T) {
	env := ansibletest.Install(t)
	root := ansibletest.Root(t)
	docs, _ := filepath.Glob(filepath.Join(root, "plugins", "modules", "*.yml"))
	if len(docs) == 0 {
		t.Fatal("no sidecar docs in plugins/modules")
	}
	for _, path := range docs {
		name := strings.TrimSuffix(filepath.Base(path), ".yml")
		fqcn := "etcdops.etcd." + name
		t.Run(name, func(t *testing.T) {
			var sidecar struct {
				Documentation struct {
					Module  string   `yaml:"module"`
					Extends []string `yaml:"extends_documentation_fragment"`
				} `yaml:"DOCUMENTATION"`
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(b, &sidecar); err != nil {
				t.Fatalf("%s is not YAML: %v", path, err)
			}
			if sidecar.Documentation.Module != name {
				t.Errorf("DOCUMENTATION.module is %q, want %q (the file name)", sidecar.Documentation.Module, name)
			}

			out := ansibleDoc(t, env, "-j", fqcn)
			var all map[string]struct {
				Doc struct {
					ShortDescription string                    `json:"short_description"`
					Options          map[string]map[string]any `json:"options"`
					Author           any                       `json:"author"`
					Requirements     []string                  `json:"requirements"`
					Attributes       map[string]map[string]any `json:"attributes"`
				} `json:"doc"`
				Examples string                    `json:"examples"`
				Return   map[string]map[string]any `json:"return"`
			}
			if err := json.Unmarshal(out, &all); err != nil {
				t.Fatalf("ansible-doc -j: %v\n%s", err, out)
			}
			d := all[fqcn]
			if d.Doc.ShortDescription == "" || len(d.Doc.Options) == 0 {
				t.Errorf("doc without short_description or options: %+v", d.Doc)
			}
			checkGalaxyMetadata(t, d.Doc.Author, d.Doc.Requirements, d.Doc.Attributes)
			for _, frag := range sidecar.Documentation.Extends {
				if frag == "etcdops.etcd.connection" {
					for _, opt := range []string{"endpoints", "ca_cert", "client_cert", "client_key", "password"} {
						if _, ok := d.Doc.Options[opt]; !ok {
							t.Errorf("connection fragment option %s not merged into the doc", opt)
						}
					}
				}
			}
			var examples []map[string]any
			if err := yaml.Unmarshal([]byte(d.Examples), &examples); err != nil || len(examples) == 0 {
				t.Fatalf("EXAMPLES is not a non-empty YAML task list: %v\n%s", err, d.Examples)
			}
			usesModule := false
			for _, ex := range examples {
				if ex["name"] == nil {
					t.Errorf("example without name: %v", ex)
				}
				if _, ok := ex[fqcn]; ok {
					usesModule = true
				}
			}
			if !usesModule {
				t.Errorf("no example calls %s by its FQCN", fqcn)
			}
			if len(d.Return) == 0 {
				t.Error("no RETURN keys")
			}
			for key, r := range d.Return {
				for _, field := range []string{"description", "returned", "type"} {
					if r[field] == nil {
						t.Errorf("RETURN %s has no %s", key, field)
					}
				}
			}

			// The text rendering operators read; ansible-core 2.14 prints 2.15 markup (O(), RV())
			// literally, so docs must use I() and C().
			text := string(ansibleDoc(t, env, fqcn))
			for _, want := range []string{"OPTIONS", "EXAMPLES:", "RETURN VALUES:"} {
				if !strings.Contains(text, want) {
					t.Errorf("ansible-doc output lacks %s", want)
				}
			}
			for _, markup := range []string{"O(", "RV(", "V(", "E("} {
				if strings.Contains(text, " "+markup) || strings.Contains(text, "\n"+markup) {
					t.Errorf("ansible-doc output shows unrendered %s...) markup; use I() or C()", markup)
				}
			}
		})
	}
}

var authorForm = regexp.MustCompile(`^[^()@]+ \(@[A-Za-z0-9-]+\)$`)

// checkGalaxyMetadata requires what a Galaxy reviewer and ansible-test sanity look for: authors as
// "Name (@github-handle)", requirements (the etcd side and the managed host), and check_mode and
// diff_mode attributes with a standard support level (details whenever support is partial).
func checkGalaxyMetadata(t *testing.T, author any, requirements []string, attributes map[string]map[string]any) {
	t.Helper()
	var authors []any
	switch a := author.(type) {
	case string:
		authors = []any{a}
	case []any:
		authors = a
	}
	if len(authors) == 0 {
		t.Error("no author")
	}
	for _, a := range authors {
		if s, _ := a.(string); !authorForm.MatchString(s) {
			t.Errorf("author %q is not in the form Name (@handle)", a)
		}
	}
	if len(requirements) == 0 {
		t.Error("no requirements (the etcd versions/APIs it needs, and none on the host: a static binary)")
	}
	staticBinary := false
	for _, r := range requirements {
		staticBinary = staticBinary || strings.Contains(r, "static")
	}
	if !staticBinary {
		t.Errorf("requirements %q do not say the module is a static binary", requirements)
	}
	for _, name := range []string{"check_mode", "diff_mode"} {
		a := attributes[name]
		if a == nil {
			t.Errorf("no %s attribute", name)
			continue
		}
		if desc, _ := a["description"]; desc == nil {
			t.Errorf("attribute %s has no description (extend ansible.builtin.action_common_attributes)", name)
		}
		switch a["support"] {
		case "full", "none":
		case "partial":
			if a["details"] == nil {
				t.Errorf("attribute %s: partial support without details", name)
			}
		default:
			t.Errorf("attribute %s: support %v, want full, partial or none", name, a["support"])
		}
	}
}

func ansibleDoc(t *testing.T, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("ansible-doc", args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ansible-doc %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// `ansible-galaxy collection build` on the checkout gives a tarball under Galaxy's 20 MB limit with
// every module, the executable for each architecture (packed, unpacking to a static executable its
// digest describes), the docs and the LICENSE, and without Go sources, build inputs or the checkout's
// ansible.cfg.
func TestCollectionBuild(t *testing.T) {
	env := ansibletest.Install(t) // builds the binaries into plugins/modules
	root := ansibletest.Root(t)
	outDir := t.TempDir()
	cmd := exec.Command("ansible-galaxy", "collection", "build", "--force", "--output-path", outDir, root)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-galaxy collection build: %v\n%s", err, out)
	}
	tarballs, _ := filepath.Glob(filepath.Join(outDir, "etcdops-etcd-*.tar.gz"))
	if len(tarballs) != 1 {
		t.Fatalf("tarballs: %v", tarballs)
	}
	entries := tarEntries(t, tarballs[0], outDir)

	var want []string
	modules, _ := os.ReadDir(filepath.Join(root, "modules"))
	for _, m := range modules {
		want = append(want, "plugins/modules/"+m.Name())
	}
	docs, _ := filepath.Glob(filepath.Join(root, "plugins", "modules", "*.yml"))
	for _, d := range docs {
		want = append(want, "plugins/modules/"+filepath.Base(d))
	}
	want = append(want, "MANIFEST.json", "FILES.json", "plugins/doc_fragments/connection.py", "LICENSE")
	for _, w := range want {
		if _, ok := entries[w]; !ok {
			t.Errorf("tarball lacks %s", w)
		}
	}
	// Galaxy refuses an upload over 20 MB: the four architectures' executables ship packed (xz).
	if st, err := os.Stat(tarballs[0]); err != nil {
		t.Fatal(err)
	} else if st.Size() >= 20_000_000 {
		t.Errorf("the tarball is %d bytes, not under Galaxy's limit of 20,000,000", st.Size())
	}
	// Every module is a small regular file (ansible-doc and the module loader find NAME by it; the action
	// plugin runs the executable), not executable (the check below).
	for _, m := range modules {
		if hdr := entries["plugins/modules/"+m.Name()]; hdr != nil && (hdr.Typeflag != tar.TypeReg || hdr.Size > 1024) {
			t.Errorf("%s is not a small regular file (type %c, %d bytes)", hdr.Name, hdr.Typeflag, hdr.Size)
		}
	}
	// Every architecture's executable is shipped packed, with the digest the action plugin reads, and
	// unpacks to a static executable for that machine that the digest describes.
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390} {
		exe := "bin/linux_" + arch + "/etcdops"
		if hdr := entries[exe+".xz"]; hdr == nil {
			t.Errorf("tarball lacks %s.xz", exe)
			continue
		}
		if hdr := entries[exe]; hdr != nil {
			t.Errorf("tarball holds %s unpacked (%d bytes)", exe, hdr.Size)
		}
		path := filepath.Join(outDir, "x", exe)
		if out, err := exec.Command("sh", "-c", `xz -dc "$1.xz" > "$1"`, "sh", path).CombinedOutput(); err != nil {
			t.Errorf("%s.xz does not unpack: %v %s", exe, err, out)
			continue
		}
		assertStaticELF(t, path, machine)
		assertDigest(t, path)
	}
	for _, w := range []string{"plugins/action/etcd_module.py", "plugins/modules/etcd_exec.py"} {
		if _, ok := entries[w]; !ok {
			t.Errorf("tarball lacks %s", w)
		}
	}
	for name, hdr := range entries {
		top := strings.SplitN(name, "/", 2)[0]
		if hdr.Typeflag == tar.TypeReg && hdr.Mode&0o111 != 0 && top != "bin" {
			// e.g. what `go build ./modules/NAME` leaves in the checkout (25 MB shipped that way once).
			t.Errorf("tarball holds an executable outside bin/: %s (%d bytes)", name, hdr.Size)
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" || name == "Makefile" {
			t.Errorf("tarball holds a build input: %s", name)
		}
		if name == "ansible.cfg" {
			// The checkout's settings (host_key_checking = False) must never reach a user's install.
			t.Error("tarball holds the checkout's ansible.cfg")
		}
		switch top {
		case "pkg", "internal", "modules", "tests", "build", "mk", "lab", ".lab", "bench", ".ci", ".git":
			t.Errorf("tarball holds %s (from %s/)", name, top)
		}
	}
}

// tarEntries lists the tarball and extracts the executables under dir/x for inspection.
func tarEntries(t *testing.T, path, dir string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	entries := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		entries[name] = hdr
		if hdr.Typeflag == tar.TypeReg && strings.HasPrefix(name, "bin/") {
			// The executables and their digests, for inspection.
			dst := filepath.Join(dir, "x", name)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return entries
}

// assertStaticELF checks a module binary runs on a target whatever its libc: the machine its
// directory names, no dynamic interpreter, and stripped as make build promises.
func assertStaticELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is built for %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s is not stripped (has .symtab)", path)
	}
	// Size (issue 18, Galaxy's 20 MB): grpc's request tracing (golang.org/x/net/trace, which brings
	// html/template) serves no module; built with grpcnotrace, its function names are not in the pclntab.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"golang.org/x/net/trace.", "html/template."} {
		if bytes.Contains(data, []byte(pkg)) {
			t.Errorf("%s links %s (built without -tags grpcnotrace?): %d bytes", path, strings.TrimSuffix(pkg, "."), len(data))
		}
	}
}

// assertDigest checks the digest make build wrote beside an executable, from which the action plugin
// takes the sha256 of the executable the .xz unpacks to: its sha256 and size.
func assertDigest(t *testing.T, path string) {
	t.Helper()
	exe, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SHA256 string `json:"sha256"`
		Size   int    `json:"size"`
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "etcdops.digest"))
	if err != nil {
		t.Errorf("no digest beside %s: %v", path, err)
		return
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s.digest: %v", path, err)
	}
	if sum := sha256.Sum256(exe); d.SHA256 != hex.EncodeToString(sum[:]) || d.Size != len(exe) {
		t.Errorf("%s.digest %s does not describe it (sha256 %x, size %d)", path, raw, sum, len(exe))
	}
}
