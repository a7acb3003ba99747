package module

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Parameters are declared as struct fields with tags:
//
//	arg:"name"          the task parameter name (fields without it are not parameters)
//	default:"value"     used when the parameter is absent (and no env fallback is set)
//	env:"A,B"           environment variables read, in order, when the parameter is absent
//	required:"true"     the parameter must be given (directly or via env)
//	choices:"a,b,c"     allowed values of a string parameter
//	secret:"true"       the value is never printed: no_log in the argument spec; errors never quote
//	                    it (a module never builds a message or a result from it)
//	type:"path"         a string that is a file path: a leading ~ becomes the home directory, as
//	                    Ansible's path type does (and the docs say type: path)
//
// ArgSpec derives the argument spec (what `--argspec` prints) from the same tags.
//
// Supported kinds: string, bool, int*, uint*, float64, time.Duration, []string (list or comma string),
// nested structs (a dict), slices of structs (a list of dicts), map[string]any (a free-form dict, its
// values as JSON decodes them). Anonymous embedded structs are flattened,
// so shared option sets (connection options) are declared once.

// ParamError is a bad-input error; it names the parameter so the user knows what to fix.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Param, e.Msg) }

// Decode fills dst (a pointer to a struct) from raw task arguments.
// Keys starting with "_ansible_" are ignored. Unknown keys are an error that lists the valid ones.
func Decode(raw map[string]any, dst any) error {
	var d decoder
	return d.decodeStruct("", raw, reflect.ValueOf(dst).Elem(), true)
}

type decoder struct{}

func (d *decoder) decodeStruct(path string, raw map[string]any, v reflect.Value, top bool) error {
	fields := map[string]reflect.Value{}
	tags := map[string]reflect.StructField{}
	collectFields(v, fields, tags)

	var unknown []string
	for k := range raw {
		if top && strings.HasPrefix(k, "_ansible_") {
			continue
		}
		if _, ok := fields[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		valid := make([]string, 0, len(fields))
		for k := range fields {
			valid = append(valid, k)
		}
		sort.Strings(valid)
		return &ParamError{Param: join(path, strings.Join(unknown, ", ")),
			Msg: fmt.Sprintf("unsupported parameter; valid parameters are: %s", strings.Join(valid, ", "))}
	}

	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		f, sf := fields[name], tags[name]
		full := join(path, name)
		val, present := raw[name]
		if present && val == nil {
			present = false
		}
		if !present {
			for _, env := range splitList(sf.Tag.Get("env")) {
				if s, ok := os.LookupEnv(env); ok && s != "" {
					val, present = s, true
					break
				}
			}
		}
		if !present {
			if def, ok := sf.Tag.Lookup("default"); ok {
				val, present = def, true
			}
		}
		if !present {
			if sf.Tag.Get("required") == "true" {
				return &ParamError{Param: full, Msg: "is required"}
			}
			if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
				// Absent dict: still apply the nested defaults.
				if err := d.decodeStruct(full, map[string]any{}, f, false); err != nil {
					return err
				}
			}
			continue
		}
		if err := d.set(full, val, f); err != nil {
			return err
		}
		if sf.Tag.Get("type") == "path" && f.Kind() == reflect.String {
			f.SetString(expandHome(f.String()))
		}
		if choices := sf.Tag.Get("choices"); choices != "" && f.Kind() == reflect.String {
			if !contains(splitList(choices), f.String()) {
				return &ParamError{Param: full, Msg: fmt.Sprintf("value %q is not one of: %s", f.String(), choices)}
			}
		}
	}
	return nil
}

func collectFields(v reflect.Value, fields map[string]reflect.Value, tags map[string]reflect.StructField) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			collectFields(v.Field(i), fields, tags)
			continue
		}
		name := sf.Tag.Get("arg")
		if name == "" || !sf.IsExported() {
			continue
		}
		fields[name] = v.Field(i)
		tags[name] = sf
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	freeDictType = reflect.TypeOf(map[string]any(nil))
)

func (d *decoder) set(param string, val any, f reflect.Value) error {
	bad := func(want string) error {
		return &ParamError{Param: param, Msg: fmt.Sprintf("expected %s, got %s", want, describe(val))}
	}
	switch {
	case f.Type() == durationType:
		dur, err := toDuration(val)
		if err != nil {
			return &ParamError{Param: param, Msg: err.Error()}
		}
		f.SetInt(int64(dur))
		return nil
	case f.Kind() == reflect.String:
		switch x := val.(type) {
		case string:
			f.SetString(x)
		case float64, bool, json.Number:
			f.SetString(fmt.Sprint(x))
		default:
			return bad("a string")
		}
	case f.Kind() == reflect.Bool:
		b, ok := toBool(val)
		if !ok {
			return bad("a boolean (true/false, yes/no, on/off, 1/0)")
		}
		f.SetBool(b)
	case f.Kind() >= reflect.Int && f.Kind() <= reflect.Int64:
		n, ok := toFloat(val)
		if !ok || n != float64(int64(n)) {
			return bad("an integer")
		}
		f.SetInt(int64(n))
	case f.Kind() >= reflect.Uint && f.Kind() <= reflect.Uint64:
		n, ok := toFloat(val)
		if !ok || n < 0 || n != float64(uint64(n)) {
			return bad("a non-negative integer")
		}
		f.SetUint(uint64(n))
	case f.Kind() == reflect.Float64:
		n, ok := toFloat(val)
		if !ok {
			return bad("a number")
		}
		f.SetFloat(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		switch x := val.(type) {
		case string:
			items = splitList(x)
		case []any:
			for _, it := range x {
				s, ok := it.(string)
				if !ok {
					return bad("a list of strings")
				}
				if s = strings.TrimSpace(s); s != "" {
					items = append(items, s)
				}
			}
		default:
			return bad("a list or a comma-separated string")
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
		list, ok := val.([]any)
		if !ok {
			return bad("a list of dicts")
		}
		out := reflect.MakeSlice(f.Type(), len(list), len(list))
		for i, it := range list {
			m, ok := it.(map[string]any)
			if !ok {
				return &ParamError{Param: fmt.Sprintf("%s[%d]", param, i), Msg: "expected a dict, got " + describe(it)}
			}
			if err := d.decodeStruct(fmt.Sprintf("%s[%d]", param, i), m, out.Index(i), false); err != nil {
				return err
			}
		}
		f.Set(out)
	case f.Type() == freeDictType:
		m, ok := val.(map[string]any)
		if !ok {
			return bad("a dict")
		}
		f.Set(reflect.ValueOf(m))
	case f.Kind() == reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			return bad("a dict")
		}
		return d.decodeStruct(param, m, f, false)
	default:
		return fmt.Errorf("module bug: parameter %s has unsupported Go type %s", param, f.Type())
	}
	return nil
}

func toBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case float64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "y", "on", "1":
			return true, true
		case "false", "no", "n", "off", "0":
			return false, true
		}
	}
	return false, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return n, err == nil
	}
	return 0, false
}

// toDuration accepts Go durations ("10s", "1h30m") and plain numbers as seconds.
func toDuration(v any) (time.Duration, error) {
	if n, ok := toFloat(v); ok {
		if n < 0 {
			return 0, fmt.Errorf("must not be negative, got %v", v)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("expected a duration such as 10s, 5m or a number of seconds, got %q", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("must not be negative, got %q", s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("expected a duration such as 10s, 5m or a number of seconds, got %s", describe(v))
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case float64:
		return fmt.Sprintf("number %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	}
	return fmt.Sprintf("%T", v)
}

// expandHome turns a leading ~ or ~/ into the home directory of the user the module runs as
// (os.path.expanduser in Ansible's path type; ~user is left alone).
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return p
	}
	return home + p[1:]
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
