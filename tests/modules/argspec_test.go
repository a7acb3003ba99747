package modules

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"github.com/etcdops/etcd/pkg/module"
)

// Every module's parameters (what its binary prints for --argspec, derived from the struct tags the
// decoder reads) agree with its sidecar doc as ansible-doc renders it (the connection fragment
// merged in): option names, type, elements, required, default, choices, sub-options of dicts and
// lists of dicts, and every environment fallback named in the option's description. `make lint`
// runs this after `make build`; it runs the checkout's executable (bin/linux_<arch>/etcdops) and reads its docs.
func TestArgSpecMatchesDocs(t *testing.T) {
	root := ansibletest.Root(t)
	entries, err := os.ReadDir(filepath.Join(root, "modules"))
	if err != nil {
		t.Fatal(err)
	}
	var names, fqcns []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
			fqcns = append(fqcns, "etcdops.etcd."+e.Name())
		}
	}
	docs, _ := filepath.Glob(filepath.Join(root, "plugins", "modules", "*.yml"))
	for _, d := range docs {
		if name := strings.TrimSuffix(filepath.Base(d), ".yml"); !slices.Contains(names, name) {
			t.Errorf("%s: a sidecar doc without a module in modules/%s", filepath.Base(d), name)
		}
	}
	docsJSON := ansibleDoc(t, checkoutEnv(t, root), append([]string{"-j"}, fqcns...)...)
	var all map[string]struct {
		Doc struct {
			Options map[string]docOption `json:"options"`
		} `json:"doc"`
	}
	if err := json.Unmarshal(docsJSON, &all); err != nil {
		t.Fatalf("ansible-doc -j: %v", err)
	}
	for _, name := range names {
		bin := filepath.Join(root, "bin", "linux_"+runtime.GOARCH, "etcdops")
		out, err := exec.Command(bin, name, "--argspec").Output()
		if err != nil {
			t.Errorf("%s %s --argspec: %v (run make build first)", bin, name, err)
			continue
		}
		var spec map[string]*module.Spec
		if err := json.Unmarshal(out, &spec); err != nil {
			t.Errorf("%s --argspec: %v\n%s", name, err, out)
			continue
		}
		doc, ok := all["etcdops.etcd."+name]
		if !ok {
			t.Errorf("%s: ansible-doc has no doc for it (plugins/modules/%s.yml)", name, name)
			continue
		}
		for _, m := range compareOptions(name, "", spec, doc.Doc.Options) {
			t.Error(m)
		}
	}
}

// docOption is one option of ansible-doc -j's output.
type docOption struct {
	Description any                  `json:"description"`
	Type        string               `json:"type"`
	Elements    string               `json:"elements"`
	Required    bool                 `json:"required"`
	Default     any                  `json:"default"`
	Choices     []any                `json:"choices"`
	Suboptions  map[string]docOption `json:"suboptions"`
}

// compareOptions lists every difference between the code's spec and the doc's options, one line each,
// naming the module and the option path.
func compareOptions(mod, path string, spec map[string]*module.Spec, doc map[string]docOption) []string {
	var out []string
	bad := func(opt, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: option %s: %s", mod, opt, fmt.Sprintf(format, args...)))
	}
	names := slices.Sorted(maps.Keys(spec))
	for k := range doc {
		if spec[k] == nil {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		opt := name
		if path != "" {
			opt = path + "." + name
		}
		s, d := spec[name], doc[name]
		if s == nil {
			bad(opt, "documented but the module does not take it")
			continue
		}
		if _, ok := doc[name]; !ok {
			bad(opt, "taken by the module (type %s) but not documented", s.Type)
			continue
		}
		docType := d.Type
		if docType == "" {
			docType = "str" // Ansible's default type
		}
		if docType != s.Type {
			bad(opt, "doc type %s, code type %s", docType, s.Type)
		}
		if d.Elements != s.Elements {
			bad(opt, "doc elements %q, code elements %q", d.Elements, s.Elements)
		}
		if d.Required != s.Required {
			bad(opt, "doc required %v, code required %v", d.Required, s.Required)
		}
		if d.Required && d.Default != nil {
			bad(opt, "documented as required with a default %v", d.Default)
		}
		// An absent list or dict decodes to Go's nil slice or map, the empty one: a doc may say so.
		emptyDefault := s.Default == nil && ((s.Type == "list" && jsonOf(d.Default) == "[]") ||
			(s.Type == "dict" && jsonOf(d.Default) == "{}"))
		if !sameJSON(d.Default, s.Default) && !emptyDefault {
			bad(opt, "doc default %s, code default %s", jsonOf(d.Default), jsonOf(s.Default))
		}
		var docChoices []string
		for _, c := range d.Choices {
			docChoices = append(docChoices, fmt.Sprint(c))
		}
		if !reflect.DeepEqual(docChoices, s.Choices) && !(len(docChoices) == 0 && len(s.Choices) == 0) {
			bad(opt, "doc choices %v, code choices %v", docChoices, s.Choices)
		}
		desc := jsonOf(d.Description)
		for _, env := range s.Env {
			if !strings.Contains(desc, env) {
				bad(opt, "falls back to %s, which its description does not name", env)
			}
		}
		if s.Options != nil || d.Suboptions != nil {
			if s.Options == nil {
				bad(opt, "documents suboptions but the module takes no dict here")
			} else if d.Suboptions == nil {
				bad(opt, "has suboptions %s in the code that the doc does not list", strings.Join(slices.Sorted(maps.Keys(s.Options)), ", "))
			} else {
				out = append(out, compareOptions(mod, opt, s.Options, d.Suboptions)...)
			}
		}
	}
	return out
}

func sameJSON(a, b any) bool { return jsonOf(a) == jsonOf(b) }

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkoutEnv makes Ansible find this checkout itself as etcdops.etcd (a link in a temporary
// collections path), so the docs checked are the checkout's whatever is installed.
func checkoutEnv(t *testing.T, root string) []string {
	t.Helper()
	dir := t.TempDir()
	ns := filepath.Join(dir, "ansible_collections", "etcdops")
	if err := os.MkdirAll(ns, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(ns, "etcd")); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("ansible-doc"); err != nil {
		t.Fatal("ansible-doc not found: run `make deps` (installs ansible-core)")
	}
	return append(os.Environ(), "ANSIBLE_COLLECTIONS_PATH="+dir, "ANSIBLE_NOCOLOR=1")
}

// The comparison reports each kind of disagreement once, by module and option path.
func TestCompareOptionsReportsEveryMismatch(t *testing.T) {
	spec := map[string]*module.Spec{
		"state":   {Type: "str", Default: "present", Choices: []string{"present", "absent"}},
		"timeout": {Type: "str", Default: "60s"},
		"force":   {Type: "bool", Default: false},
		"user":    {Type: "str", Env: []string{"ETCDCTL_USER"}},
		"source": {Type: "dict", Required: true, Options: map[string]*module.Spec{
			"endpoints": {Type: "list", Elements: "str"},
		}},
		"code_only": {Type: "int"},
		"resumable": {Type: "list", Elements: "str"},
		"data":      {Type: "dict"},
	}
	doc := map[string]docOption{
		"state":    {Type: "str", Default: "present", Choices: []any{"present", "gone"}},
		"timeout":  {Type: "str", Default: "30s"},
		"force":    {Type: "bool", Required: true},
		"user":     {Type: "str", Description: []any{"etcd user."}},
		"source":   {Type: "dict", Required: true, Suboptions: map[string]docOption{"endpoints": {Type: "str"}}},
		"doc_only": {Type: "path"},
		// empty defaults of a list and a dict are what Go's nil slice and map are
		"resumable": {Type: "list", Elements: "str", Default: []any{}},
		"data":      {Type: "dict", Default: map[string]any{}},
	}
	got := strings.Join(compareOptions("m", "", spec, doc), "\n")
	for _, want := range []string{
		"m: option code_only: taken by the module (type int) but not documented",
		"m: option doc_only: documented but the module does not take it",
		"m: option force: doc required true, code required false",
		`m: option force: doc default null, code default false`,
		"m: option source.endpoints: doc type str, code type list",
		`m: option source.endpoints: doc elements "", code elements "str"`,
		"m: option state: doc choices [present gone], code choices [present absent]",
		`m: option timeout: doc default "30s", code default "60s"`,
		"m: option user: falls back to ETCDCTL_USER, which its description does not name",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if n := len(strings.Split(got, "\n")); n != 9 {
		t.Errorf("%d lines, want 9:\n%s", n, got)
	}
}
