package modules

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/etcdops/etcd/internal/ansibletest"
	"go.yaml.in/yaml/v3"
)

// Every changelog fragment uses only the sections changelogs/config.yaml declares (as
// antsibull-changelog lint requires), and every module and playbook is named by some fragment entry.
func TestChangelogFragments(t *testing.T) {
	root := ansibletest.Root(t)
	var config struct {
		NotesDir string     `yaml:"notesdir"`
		Sections [][]string `yaml:"sections"`
		Prelude  string     `yaml:"prelude_section_name"`
		Trivial  string     `yaml:"trivial_section_name"`
	}
	b, err := os.ReadFile(filepath.Join(root, "changelogs", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &config); err != nil {
		t.Fatalf("changelogs/config.yaml: %v", err)
	}
	sections := map[string]bool{config.Prelude: true, config.Trivial: true}
	for _, s := range config.Sections {
		if len(s) != 2 {
			t.Fatalf("changelogs/config.yaml: section %v is not [name, title]", s)
		}
		sections[s[0]] = true
	}
	if config.NotesDir == "" || len(config.Sections) == 0 {
		t.Fatalf("changelogs/config.yaml: no notesdir or sections: %+v", config)
	}

	fragments, _ := filepath.Glob(filepath.Join(root, "changelogs", config.NotesDir, "*"))
	var entries []string
	for _, f := range fragments {
		name := filepath.Base(f)
		if ext := filepath.Ext(name); ext != ".yml" && ext != ".yaml" {
			t.Errorf("fragment %s: not .yml or .yaml (antsibull-changelog ignores it)", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var frag map[string]any
		if err := yaml.Unmarshal(b, &frag); err != nil || len(frag) == 0 {
			t.Errorf("fragment %s: not a YAML mapping of sections: %v", name, err)
			continue
		}
		for section, v := range frag {
			if !sections[section] {
				t.Errorf("fragment %s: unknown section %s", name, section)
				continue
			}
			if section == config.Prelude {
				if s, ok := v.(string); ok {
					entries = append(entries, s)
				} else {
					t.Errorf("fragment %s: %s is not a string", name, section)
				}
				continue
			}
			list, ok := v.([]any)
			if !ok {
				t.Errorf("fragment %s: %s is not a list of entries", name, section)
				continue
			}
			for _, e := range list {
				s, ok := e.(string)
				if !ok || strings.TrimSpace(s) == "" {
					t.Errorf("fragment %s: %s holds a non-string or empty entry %v", name, section, e)
					continue
				}
				entries = append(entries, s)
			}
		}
	}
	all := strings.Join(entries, "\n")

	modules, _ := os.ReadDir(filepath.Join(root, "modules"))
	playbooks, _ := filepath.Glob(filepath.Join(root, "playbooks", "*.yml"))
	var named []string
	for _, m := range modules {
		named = append(named, m.Name())
	}
	for _, p := range playbooks {
		named = append(named, filepath.Base(p))
	}
	if len(modules) == 0 || len(playbooks) == 0 {
		t.Fatalf("no modules (%d) or playbooks (%d) found", len(modules), len(playbooks))
	}
	for _, n := range named {
		if !regexp.MustCompile(`(^|[^\w.])` + regexp.QuoteMeta(n) + `($|[^\w])`).MatchString(all) {
			t.Errorf("%s is named by no changelog fragment in changelogs/%s", n, config.NotesDir)
		}
	}
}
