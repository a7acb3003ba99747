package module

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type conn struct {
	Endpoints []string      `arg:"endpoints" env:"X_ENDPOINTS" default:"https://127.0.0.1:2379"`
	Password  string        `arg:"password" secret:"true"`
	Timeout   time.Duration `arg:"dial_timeout" default:"5s"`
	Note      string        // no arg tag: not a parameter
}

type specParams struct {
	conn
	Dir    string         `arg:"dir" type:"path" default:"/var/lib/etcd"`
	Source conn           `arg:"source" required:"true"`
	Items  []inner        `arg:"items"`
	Ratio  float64        `arg:"ratio" default:"0.5"`
	Count  uint64         `arg:"count" default:"1"`
	Mode   string         `arg:"mode" default:"auto" choices:"auto,api"`
	Off    bool           `arg:"off" default:"false"`
	Data   map[string]any `arg:"data"`
	hidden string         `arg:"hidden"` // unexported: not a parameter
}

// The spec has every parameter Decode accepts (embedded structs flattened, nested structs and lists of
// structs with their options), typed defaults, and nothing Decode ignores.
func TestArgSpecFromTags(t *testing.T) {
	got, err := ArgSpec(&specParams{})
	if err != nil {
		t.Fatal(err)
	}
	connSpec := func(required bool) *Spec {
		return &Spec{Type: "dict", Required: required, Options: map[string]*Spec{
			"endpoints":    {Type: "list", Elements: "str", Default: []string{"https://127.0.0.1:2379"}, Env: []string{"X_ENDPOINTS"}},
			"password":     {Type: "str", NoLog: true},
			"dial_timeout": {Type: "str", Default: "5s"},
		}}
	}
	want := map[string]*Spec{
		"endpoints":    connSpec(false).Options["endpoints"],
		"password":     connSpec(false).Options["password"],
		"dial_timeout": connSpec(false).Options["dial_timeout"],
		"dir":          {Type: "path", Default: "/var/lib/etcd"},
		"source":       connSpec(true),
		"items": {Type: "list", Elements: "dict", Options: map[string]*Spec{
			"prefix": {Type: "str", Required: true},
			"ttl":    {Type: "str", Default: "1h"},
		}},
		"ratio": {Type: "float", Default: 0.5},
		"count": {Type: "int", Default: uint64(1)},
		"mode":  {Type: "str", Default: "auto", Choices: []string{"auto", "api"}},
		"off":   {Type: "bool", Default: false},
		"data":  {Type: "dict"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("spec\n%s\nwant\n%s", g, w)
	}

	// The spec's parameter names are exactly the ones Decode accepts: an unknown-key error lists them.
	err = Decode(map[string]any{"nope": 1}, &specParams{})
	for name := range want {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Decode's valid parameters %q lack %s", err, name)
		}
	}

	// JSON as --argspec prints it: a false default stays, absent fields are left out.
	b, _ := printArgSpec(&specParams{})
	var raw map[string]map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if d, ok := raw["off"]["default"]; !ok || d != false {
		t.Errorf("off: default %v (present %v), want false", d, ok)
	}
	if _, ok := raw["ratio"]["required"]; ok {
		t.Errorf("ratio: required printed though false: %v", raw["ratio"])
	}
}

// A tag the decoder would reject at run time is a module bug the spec reports at build/lint time.
func TestArgSpecRejectsBadTags(t *testing.T) {
	cases := []struct {
		params any
		want   string
	}{
		{&struct {
			N int `arg:"n" default:"many"`
		}{}, "default of n"},
		{&struct {
			S string `arg:"s" default:"c" choices:"a,b"`
		}{}, "not one of"},
		{&struct {
			S string `arg:"s" required:"true" default:"a"`
		}{}, "required and has a default"},
		{&struct {
			B bool `arg:"b" type:"path"`
		}{}, "only for string"},
		{&struct {
			M map[string]int `arg:"m"`
		}{}, "unsupported Go type"},
		{&struct {
			B bool `arg:"b" choices:"true,false"`
		}{}, "only checked for strings"},
	}
	for _, c := range cases {
		_, err := ArgSpec(c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%T: error %v, want one containing %q", c.params, err, c.want)
		}
	}
}

// type:"path" expands a leading ~ as Ansible's path type does; other strings are left alone.
func TestPathExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	var p struct {
		Dir   string `arg:"dir" type:"path"`
		Other string `arg:"other"`
		User  string `arg:"user_dir" type:"path"`
	}
	if err := Decode(map[string]any{"dir": "~/backup", "other": "~/x", "user_dir": "~root/x"}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Dir != filepath.Join(home, "backup") || p.Other != "~/x" || p.User != "~root/x" {
		t.Fatalf("decoded %+v (home %s)", p, home)
	}
}
