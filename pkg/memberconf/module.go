package memberconf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/etcdops/etcd/pkg/module"
)

// Params are etcd_member_config's options.
type Params struct {
	Flavour  string         `arg:"flavour" default:"env_file" choices:"env_file,dropin"`
	Path     string         `arg:"path" required:"true"`
	State    string         `arg:"state" default:"read" choices:"read,present"`
	Settings map[string]any `arg:"settings"`
	Command  string         `arg:"command"`
	Backup   bool           `arg:"backup" default:"true"`
	Reload   bool           `arg:"daemon_reload" default:"true"`

	changes []Change
}

// Result is what the module returns: the settings in the file (after the change; in check mode, as
// they would be).
type Result struct {
	Flavour string            `json:"flavour"`
	Path    string            `json:"path"`
	Env     map[string]string `json:"env"`
	Command string            `json:"command,omitempty"`
	Backup  string            `json:"backup_file,omitempty"`
	// Reload is true when a drop-in changed: systemd must reload (the module does, unless told not to)
	// before the unit next starts.
	Reload bool `json:"daemon_reload"`
}

// Validate rejects input that cannot mean anything, naming the option and the fix.
func (p *Params) Validate() error {
	if !filepath.IsAbs(p.Path) || filepath.Clean(p.Path) != p.Path {
		return &module.ParamError{Param: "path", Msg: fmt.Sprintf("must be a clean absolute path, got %q; e.g. "+
			"/etc/etcd/etcd.conf or /etc/systemd/system/etcd-member.service.d/20-clct-etcd-member.conf", p.Path)}
	}
	if p.Flavour == DropIn && filepath.Ext(p.Path) != ".conf" {
		return &module.ParamError{Param: "path", Msg: fmt.Sprintf("a drop-in must end in .conf (systemd ignores "+
			"other names), got %q", p.Path)}
	}
	settings := map[string]*string{}
	for k, v := range p.Settings {
		s, err := settingValue(v)
		if err != nil {
			return &module.ParamError{Param: "settings", Msg: fmt.Sprintf("%s: %v", k, err)}
		}
		settings[k] = s
	}
	changes, err := Sorted(settings)
	if err != nil {
		return &module.ParamError{Param: "settings", Msg: err.Error()}
	}
	p.changes = changes
	return nil
}

// settingValue turns a YAML scalar into the text etcd reads; null removes the setting.
func settingValue(v any) (*string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return nil, fmt.Errorf("give a string, number, boolean or null (to remove it), got %T", v)
	}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == 0 {
			return nil, fmt.Errorf("a value must be one line")
		}
	}
	return &s, nil
}

// Run reads the member's configuration and, with state present, writes the settings into it.
func Run(ctx context.Context, t *module.Task, p Params, reload func(context.Context) error, now time.Time) (*Result, error) {
	res := &Result{Flavour: p.Flavour, Path: p.Path}
	old, err := os.ReadFile(p.Path)
	missing := os.IsNotExist(err)
	if err != nil && !(missing && p.State == "present" && p.Flavour == DropIn && p.Command != "") {
		if missing {
			return nil, fmt.Errorf("%s does not exist: this host's etcd configuration (flavour %s) is not there; "+
				"set etcd_config_flavour and the file's path to where the member's configuration lives", p.Path, p.Flavour)
		}
		return nil, err
	}
	data := old
	if p.State == "present" {
		if p.Flavour == DropIn {
			var base []byte
			if !missing {
				base = old
			}
			if data, err = ApplyDropIn(base, p.Command, p.changes); err != nil {
				return nil, fmt.Errorf("%s: %w", p.Path, err)
			}
		} else {
			data = ApplyEnv(old, p.changes)
		}
	}
	if p.Flavour == DropIn {
		if res.Env, res.Command, err = ReadDropIn(data); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Path, err)
		}
	} else {
		res.Env = ParseEnv(data)
	}
	if missing || string(data) != string(old) {
		t.Changed()
		t.SetDiff(string(old), string(data))
		res.Reload = p.Flavour == DropIn
		if !t.CheckMode {
			if res.Backup, err = WriteFile(p.Path, data, p.Backup && !missing, now); err != nil {
				return nil, err
			}
			if res.Reload && p.Reload {
				if err := reload(ctx); err != nil {
					return res, fmt.Errorf("%s written, but systemd did not reload (run systemctl daemon-reload): %w", p.Path, err)
				}
			}
		}
	}
	return res, nil
}
