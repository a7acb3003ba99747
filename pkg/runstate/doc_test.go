package runstate

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The sidecar doc's options are exactly Params' tags: names, types, defaults, choices, required.
func TestDocMatchesParams(t *testing.T) {
	b, err := os.ReadFile("../../plugins/modules/etcd_run_state.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Documentation struct {
			Options map[string]struct {
				Type     string   `yaml:"type"`
				Elements string   `yaml:"elements"`
				Default  any      `yaml:"default"`
				Choices  []string `yaml:"choices"`
				Required bool     `yaml:"required"`
			} `yaml:"options"`
		} `yaml:"DOCUMENTATION"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	opts := doc.Documentation.Options
	typ := reflect.TypeOf(Params{})
	seen := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := f.Tag.Get("arg")
		seen[name] = true
		o, ok := opts[name]
		if !ok {
			t.Errorf("option %s is not documented", name)
			continue
		}
		wantType := map[reflect.Kind]string{reflect.String: "str", reflect.Slice: "list", reflect.Map: "dict"}[f.Type.Kind()]
		if name == "path" {
			wantType = "path"
		}
		if o.Type != wantType || (wantType == "list") != (o.Elements == "str") {
			t.Errorf("option %s: documented type %s (elements %q), Go field %s", name, o.Type, o.Elements, f.Type)
		}
		wantDefault, hasDefault := f.Tag.Lookup("default")
		gotDefault := ""
		if o.Default != nil {
			gotDefault = fmt.Sprint(o.Default)
		}
		if wantType != "str" && !hasDefault { // an absent list or dict is an empty one
			wantDefault = map[string]string{"list": "[]", "dict": "map[]", "path": ""}[wantType]
		}
		if gotDefault != wantDefault {
			t.Errorf("option %s: documented default %q, tag %q", name, gotDefault, wantDefault)
		}
		if got, want := strings.Join(o.Choices, ","), f.Tag.Get("choices"); got != want {
			t.Errorf("option %s: documented choices %q, tag %q", name, got, want)
		}
		if o.Required != (f.Tag.Get("required") == "true") {
			t.Errorf("option %s: documented required=%v, tag %q", name, o.Required, f.Tag.Get("required"))
		}
	}
	for name := range opts {
		if !seen[name] {
			t.Errorf("documented option %s is not a parameter", name)
		}
	}
}
