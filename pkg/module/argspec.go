package module

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// Spec is one parameter as the decoder sees it, in the shape of Ansible's argument_spec (with env in
// place of fallback, since Ansible's env_fallback is a Python callable). Module docs are checked
// against it (tests/modules), so the struct tags stay the one source of truth for what a module takes.
type Spec struct {
	Type     string           `json:"type"`               // str, path, bool, int, float, list, dict
	Elements string           `json:"elements,omitempty"` // of a list: str or dict
	Required bool             `json:"required,omitempty"`
	Default  any              `json:"default,omitempty"` // typed as in the docs: "5s", true, 8, ["/"]
	Choices  []string         `json:"choices,omitempty"`
	NoLog    bool             `json:"no_log,omitempty"`
	Env      []string         `json:"env,omitempty"`     // variables read, in order, when absent
	Options  map[string]*Spec `json:"options,omitempty"` // of a dict, or of each dict of a list
}

// ArgSpec derives the argument spec of a params struct (a pointer to it, as Main takes) from the same
// struct tags and field walk Decode uses. A default that does not decode, or is not one of the
// choices, is a module bug and an error here.
func ArgSpec(params any) (map[string]*Spec, error) {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("module bug: params must be a pointer to a struct, got %T", params)
	}
	return structSpec("", v.Elem().Type())
}

func structSpec(path string, t reflect.Type) (map[string]*Spec, error) {
	fields := map[string]reflect.Value{}
	tags := map[string]reflect.StructField{}
	collectFields(reflect.New(t).Elem(), fields, tags)
	out := make(map[string]*Spec, len(fields))
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s, err := fieldSpec(join(path, name), tags[name])
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

func fieldSpec(param string, sf reflect.StructField) (*Spec, error) {
	ft := sf.Type
	s := &Spec{Required: sf.Tag.Get("required") == "true", NoLog: sf.Tag.Get("secret") == "true",
		Choices: splitList(sf.Tag.Get("choices")), Env: splitList(sf.Tag.Get("env"))}
	switch {
	case ft == durationType:
		s.Type = "str" // "10s", "1m" or a number of seconds; Ansible has no duration type
	case ft.Kind() == reflect.String:
		s.Type = "str"
	case ft.Kind() == reflect.Bool:
		s.Type = "bool"
	case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
		s.Type = "int"
	case ft.Kind() == reflect.Float64:
		s.Type = "float"
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
		s.Type, s.Elements = "list", "str"
	case ft == freeDictType:
		s.Type = "dict" // free-form: no options
	case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
		s.Type, s.Elements = "list", "dict"
		opts, err := structSpec(param, ft.Elem())
		if err != nil {
			return nil, err
		}
		s.Options = opts
	case ft.Kind() == reflect.Struct:
		s.Type = "dict"
		opts, err := structSpec(param, ft)
		if err != nil {
			return nil, err
		}
		s.Options = opts
	default:
		return nil, fmt.Errorf("module bug: parameter %s has unsupported Go type %s", param, ft)
	}
	if typ := sf.Tag.Get("type"); typ != "" {
		if typ != "path" || s.Type != "str" || ft == durationType {
			return nil, fmt.Errorf("module bug: parameter %s: type:%q is only for string fields (type:\"path\")", param, typ)
		}
		s.Type = typ
	}
	if len(s.Choices) > 0 && ft.Kind() != reflect.String {
		return nil, fmt.Errorf("module bug: parameter %s: choices are only checked for strings", param)
	}
	if def, ok := sf.Tag.Lookup("default"); ok {
		// Decode the default as the decoder would, so a default it rejects fails here too.
		v := reflect.New(ft).Elem()
		var d decoder
		if err := d.set(param, def, v); err != nil {
			return nil, fmt.Errorf("module bug: default of %s: %v", param, err)
		}
		if len(s.Choices) > 0 && !contains(s.Choices, v.String()) {
			return nil, fmt.Errorf("module bug: default %q of %s is not one of: %s", def, param, sf.Tag.Get("choices"))
		}
		switch {
		case ft == durationType:
			s.Default = def // as written, the way the docs show it
		case s.Type == "dict" || s.Elements == "dict": // the decoder takes no dict from a tag string
			return nil, fmt.Errorf("module bug: parameter %s: a dict takes its defaults from its fields", param)
		default:
			s.Default = v.Interface()
		}
		if s.Required {
			return nil, fmt.Errorf("module bug: parameter %s is required and has a default", param)
		}
	}
	return s, nil
}

// printArgSpec is what a module binary prints for `--argspec`.
func printArgSpec(params any) ([]byte, error) {
	spec, err := ArgSpec(params)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(spec, "", "  ")
}
