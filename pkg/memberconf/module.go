package memberconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/module"
	"github.com/etcdops/etcd/pkg/systemd"
)

// Params are etcd_member_config's options.
type Params struct {
	Flavour  string         `arg:"flavour" default:"env_file" choices:"env_file,dropin,unit"`
	Path     string         `arg:"path" required:"true"`
	State    string         `arg:"state" default:"read" choices:"read,present"`
	Settings map[string]any `arg:"settings"`
	Command  string         `arg:"command"`
	UnitText string         `arg:"unit_text"`
	Backup   bool           `arg:"backup" default:"true"`
	Reload   bool           `arg:"daemon_reload" default:"true"`
	// Environment is written into the unit's (or drop-in's) first EnvironmentFile.
	Environment map[string]any `arg:"environment"`
	// Unit and Binary ask, in the same call, how systemd runs the member and which etcd the host has
	// (etcd_facts reads all three at once: one task instead of three).
	Unit   string `arg:"unit"`
	Binary string `arg:"binary"`

	changes, envChanges []Change
	unit                string
}

// Result is what the module returns: the settings in the file (after the change; in check mode, as
// they would be).
type Result struct {
	Flavour string            `json:"flavour"`
	Path    string            `json:"path"`
	Env     map[string]string `json:"env"`
	Command string            `json:"command,omitempty"`
	// EnvFile is the EnvironmentFile I(environment) went into (its values are not returned: such a file
	// may hold anything).
	EnvFile string `json:"env_file,omitempty"`
	Backup  string `json:"backup_file,omitempty"`
	// Reload is true when a unit or drop-in changed: systemd must reload (the module does, unless told not to)
	// before the unit next starts.
	Reload bool `json:"daemon_reload"`
	// ExecStart is the command line of I(unit)'s first ExecStart= as systemd runs it ("" when the unit is
	// not loaded); Version is what I(binary) --version reports ("" when it does not run).
	ExecStart *string `json:"exec_start,omitempty"`
	Version   *string `json:"version,omitempty"`
}

// Units is what Run needs of systemd.
type Units interface {
	DaemonReload(context.Context) error
	Unit(context.Context, string) (systemd.UnitInfo, error)
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
	if p.Flavour == Unit && filepath.Ext(p.Path) != ".service" {
		return &module.ParamError{Param: "path", Msg: fmt.Sprintf("a unit must end in .service, got %q; "+
			"e.g. /etc/systemd/system/etcd3.service", p.Path)}
	}
	if len(p.Environment) > 0 && p.Flavour == EnvFile {
		return &module.ParamError{Param: "environment", Msg: "only a unit or drop-in (flavour unit or dropin) has an " +
			"EnvironmentFile; for env_file give the ETCD_* settings in settings"}
	}
	var err error
	if p.Unit != "" {
		if p.unit, err = systemd.UnitName(p.Unit); err != nil {
			return &module.ParamError{Param: "unit", Msg: err.Error()}
		}
	}
	if p.Binary != "" && strings.Contains(p.Binary, "/") && (!filepath.IsAbs(p.Binary) || filepath.Clean(p.Binary) != p.Binary) {
		return &module.ParamError{Param: "binary", Msg: fmt.Sprintf("must be a command found in PATH or a clean absolute "+
			"path, got %q; e.g. etcd or /usr/bin/etcd", p.Binary)}
	}
	if p.changes, err = changes("settings", p.Settings, validName, "is not an etcd setting name: use the ETCD_* "+
		"variable name, e.g. ETCD_INITIAL_CLUSTER"); err != nil {
		return err
	}
	p.envChanges, err = changes("environment", p.Environment, validVar, "is not a variable name: use letters, digits "+
		"and _, e.g. NODE1_IP")
	return err
}

// changes reads option param (names checked by valid) as changes in name order.
func changes(param string, m map[string]any, valid *regexp.Regexp, invalid string) ([]Change, error) {
	values := map[string]*string{}
	for k, v := range m {
		s, err := settingValue(v)
		if err != nil {
			return nil, &module.ParamError{Param: param, Msg: fmt.Sprintf("%s: %v", k, err)}
		}
		values[k] = s
	}
	out, err := sortedAs(values, valid, invalid)
	if err != nil {
		return nil, &module.ParamError{Param: param, Msg: err.Error()}
	}
	return out, nil
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
func Run(ctx context.Context, t *module.Task, p Params, units Units, now time.Time) (*Result, error) {
	res := &Result{Flavour: p.Flavour, Path: p.Path}
	if err := runtimeFacts(ctx, p, units, res); err != nil {
		return nil, err
	}
	old, err := os.ReadFile(p.Path)
	missing := os.IsNotExist(err)
	if err != nil && !(missing && p.State == "present" && (p.Flavour == DropIn && p.Command != "" || p.Flavour == Unit && p.UnitText != "")) {
		if missing {
			return nil, fmt.Errorf("%s does not exist: this host's etcd configuration (flavour %s) is not there; "+
				"set etcd_config_flavour and the file's path to where the member's configuration lives", p.Path, p.Flavour)
		}
		return nil, err
	}
	present := p.State == "present"
	files := []*file{{path: p.Path, old: old, new: old, missing: missing}}
	if p.Flavour == EnvFile {
		if present {
			files[0].new = ApplyEnv(old, p.changes)
		}
		res.Env = ParseEnv(files[0].new)
	} else {
		if files, err = applyFlags(p, files[0], res); err != nil {
			return nil, err
		}
		res.Reload = files[0].changed()
	}
	var before, after string
	for _, f := range files {
		if !f.changed() {
			continue
		}
		t.Changed()
		before += f.before()
		after += f.after()
		if !t.CheckMode {
			backup, err := WriteFile(f.path, f.new, p.Backup && !f.missing, now)
			if err != nil {
				return nil, err
			}
			if f == files[0] {
				res.Backup = backup
			}
		}
	}
	if t.IsChanged() {
		t.SetDiff(before, after)
	}
	if res.Reload && p.Reload && !t.CheckMode {
		if err := units.DaemonReload(ctx); err != nil {
			return res, fmt.Errorf("%s written, but systemd did not reload (run systemctl daemon-reload): %w", p.Path, err)
		}
	}
	return res, nil
}

// runtimeFacts fills in how systemd runs p.unit and the version of p.Binary, when asked.
func runtimeFacts(ctx context.Context, p Params, units Units, res *Result) error {
	if p.unit != "" {
		// A host without systemd (a container, the control node) has no unit running etcd: "".
		u, err := units.Unit(ctx, p.unit)
		if err != nil && !errors.Is(err, systemd.ErrNoSystemd) {
			return fmt.Errorf("option unit (%s): %w", p.unit, err)
		}
		var line string
		if u.Loaded() && len(u.ExecStart) > 0 {
			line = strings.Join(u.ExecStart[0], " ")
		}
		res.ExecStart = &line
	}
	if p.Binary != "" {
		v := binaryVersion(ctx, p.Binary)
		res.Version = &v
	}
	return nil
}

var versionLine = regexp.MustCompile(`etcd Version: (\S+)`)

// binaryVersion is the version `binary --version` prints, "" when it does not run (a containerized
// etcd has no binary on the host) or prints none.
func binaryVersion(ctx context.Context, binary string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.WaitDelay = 5 * time.Second // a wrapper's child holding stdout open cannot hang the read
	out, _ := cmd.Output()          // what it printed counts, whatever its exit status
	if m := versionLine.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// file is one file Run may write: its text before and after.
type file struct {
	path     string
	old, new []byte
	missing  bool
}

func (f *file) changed() bool { return f.missing || string(f.old) != string(f.new) }

// before and after are the diff's text, headed by the path (a unit may change with its EnvironmentFile).
func (f *file) before() string { return "# " + f.path + "\n" + string(f.old) }
func (f *file) after() string  { return "# " + f.path + "\n" + string(f.new) }

// applyFlags reads (and with state present writes) a unit's or drop-in's ExecStart flags, ${NAME}
// expanded from its EnvironmentFile, into which environment goes first. It returns the unit (or
// drop-in) and, when environment is given, its EnvironmentFile.
func applyFlags(p Params, u *file, res *Result) ([]*file, error) {
	files := []*file{u}
	var base []byte
	switch {
	case !u.missing:
		base = u.old
	case p.Flavour == Unit:
		base = []byte(p.UnitText)
	}
	var changes []Change
	if p.State == "present" {
		changes = p.changes
		if len(p.envChanges) > 0 {
			var d *dropIn
			var err error
			if base == nil {
				err = fmt.Errorf("a new drop-in names no EnvironmentFile")
			} else if d, err = parseDropIn(base); err == nil && d.EnvFile() == "" {
				err = fmt.Errorf("no EnvironmentFile= in its [Service] section")
			}
			if err != nil {
				return nil, &module.ParamError{Param: "environment", Msg: fmt.Sprintf("%s: %v: environment goes into "+
					"the unit's EnvironmentFile; add EnvironmentFile=/etc/etcd.conf to the unit", p.Path, err)}
			}
			res.EnvFile = d.EnvFile()
			old, err := os.ReadFile(res.EnvFile)
			if err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			files = append(files, &file{path: res.EnvFile, old: old, new: ApplyEnv(old, p.envChanges), missing: err != nil})
		}
	}
	read := func(path string) ([]byte, error) {
		for _, f := range files[1:] {
			if f.path == path {
				return f.new, nil
			}
		}
		return os.ReadFile(path)
	}
	flags, err := ApplyFlags(base, p.Command, changes, read)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Path, err)
	}
	u.new = flags.Data
	res.Env, res.Command = flags.Env, flags.Command
	return files, nil
}
