package memberconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// word is one word of an ExecStart line: raw as written (kept verbatim when untouched, so $ETCD_OPTS
// and the author's quoting survive) and its value after systemd's unquoting.
type word struct{ raw, value string }

// splitExec splits an ExecStart value into words as systemd does for the cases a unit holds: blanks
// and backslash-newline continuations separate words; single or double quotes (anywhere in a word)
// group; a backslash escapes the next character; "%%" and "$$" stand for "%" and "$". With vars, a
// "${NAME}" set there is replaced by its value (one set nowhere stays as written: it may come from a
// file this one does not name); a bare "$NAME" word (systemd splits it into words) stays as written.
func splitExec(s string, vars map[string]string) ([]word, error) {
	s = strings.ReplaceAll(s, "\\\n", " ")
	var out []word
	i := 0
	for {
		for i < len(s) && strings.IndexByte(" \t\n", s[i]) >= 0 {
			i++
		}
		if i == len(s) {
			return out, nil
		}
		start := i
		var val strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				val.WriteByte(s[i])
			case (c == '%' || c == '$') && i+1 < len(s) && s[i+1] == c:
				i++
				val.WriteByte(c)
			case c == '$' && vars != nil && strings.HasPrefix(s[i:], "${") && strings.Contains(s[i:], "}"):
				ref := s[i : i+strings.IndexByte(s[i:], '}')+1]
				v, ok := vars[ref[2:len(ref)-1]]
				if !ok {
					v = ref
				}
				val.WriteString(v)
				i += len(ref) - 1
			case quote != 0 && c == quote:
				quote = 0
			case quote != 0:
				val.WriteByte(c)
			case c == '"' || c == '\'':
				quote = c
			case c == ' ' || c == '\t' || c == '\n':
				goto done
			default:
				val.WriteByte(c)
			}
		}
	done:
		if quote != 0 {
			return nil, fmt.Errorf("unterminated %c quote in ExecStart", quote)
		}
		out = append(out, word{raw: s[start:i], value: val.String()})
	}
}

// flagName maps ETCD_INITIAL_CLUSTER to initial-cluster and back.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "ETCD_")), "_", "-")
}
func envName(flag string) string {
	return "ETCD_" + strings.ReplaceAll(strings.ToUpper(flag), "-", "_")
}

// flag is one etcd flag of an ExecStart: the words it spans and its setting.
type flag struct {
	words       []word
	name, value string
}

// execLine is a parsed ExecStart: the command words before the first flag (binary, wrapper, $ETCD_OPTS)
// and the flags. etcd takes no positional arguments, so a word after a flag without "=" is its value.
type execLine struct {
	command []word
	flags   []flag
	vars    map[string]string // the environment ExecStart is expanded with (nil: none read)
}

func parseExec(s string, vars map[string]string) (*execLine, error) {
	words, err := splitExec(s, vars)
	if err != nil {
		return nil, err
	}
	e := &execLine{vars: vars}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(e.flags) == 0 && (i == 0 || !strings.HasPrefix(w.value, "-")) {
			e.command = append(e.command, w)
			continue
		}
		if !strings.HasPrefix(w.value, "-") {
			return nil, fmt.Errorf("ExecStart word %q follows the flags but is not a flag", w.raw)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(w.value, "-"), "=")
		f := flag{words: []word{w}, name: name, value: value}
		if !hasValue {
			f.value = "true" // a boolean flag
			if i+1 < len(words) && !strings.HasPrefix(words[i+1].value, "-") {
				i++
				f.words = append(f.words, words[i])
				f.value = words[i].value
			}
		}
		e.flags = append(e.flags, f)
	}
	if len(e.command) == 0 {
		return nil, fmt.Errorf("ExecStart is empty")
	}
	return e, nil
}

func (e *execLine) env() map[string]string {
	env := map[string]string{}
	for _, f := range e.flags {
		env[envName(f.name)] = f.value
	}
	return env
}

// apply sets or removes flags: a changed flag is written afresh in place of its first occurrence
// (later duplicates dropped), a new one appended. It reports whether anything changed.
func (e *execLine) apply(changes []Change) bool {
	before := e.String()
	for _, c := range changes {
		name := flagName(c.Name)
		var kept []flag
		done := false
		for _, f := range e.flags {
			if f.name != name {
				kept = append(kept, f)
				continue
			}
			if c.Value != nil && !done {
				if f.value != *c.Value {
					f = e.newFlag(name, *c.Value, varRefs(f))
				}
				kept = append(kept, f)
			}
			done = true
		}
		if c.Value != nil && !done {
			kept = append(kept, e.newFlag(name, *c.Value, nil))
		}
		e.flags = kept
	}
	return e.String() != before
}

// newFlag writes a flag so that splitExec (and systemd) read it back as value. Where ExecStart is
// expanded with variables, a whole token of the value (between characters other than letters, digits
// and dots) equal to a variable's value is written as ${NAME}, so a written flag reads as the author's
// (--initial-cluster=etcd-${NODE1_IP}=http://${NODE1_IP}:${PEERS_PORT}); prefer (the variables the flag
// named before) are tried first, then the others by name.
func (e *execLine) newFlag(name, value string, prefer []string) flag {
	names := append([]string{}, prefer...)
	var rest []string
	for n, v := range e.vars {
		if v != "" && !slices.Contains(prefer, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)
	s := "--" + name + "=" + value
	var b strings.Builder
	literal := strings.NewReplacer("%", "%%", "$", "$$")
	start := 0
	for i := 0; i < len(s); i++ {
		if i > 0 && tokenChar(s[i-1]) {
			continue
		}
		for _, n := range names {
			v := e.vars[n]
			if v != "" && strings.HasPrefix(s[i:], v) && (i+len(v) == len(s) || !tokenChar(s[i+len(v)])) {
				b.WriteString(literal.Replace(s[start:i]) + "${" + n + "}")
				i += len(v) - 1
				start = i + 1
				break
			}
		}
	}
	b.WriteString(literal.Replace(s[start:]))
	return flag{words: []word{{raw: quoteWord(b.String())}}, name: name, value: value}
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// varRefs are the variables a flag's words name, in order.
func varRefs(f flag) []string {
	var out []string
	for _, w := range f.words {
		for _, m := range varRef.FindAllStringSubmatch(w.raw, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// quoteWord quotes an escaped word (no unescaped specifiers or variables but ${NAME}) in double quotes
// when it holds anything beyond plain URL and path characters.
func quoteWord(s string) string {
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/=@+%${}", r)) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// String renders the ExecStart value one word per line, as CoreOS writes it.
func (e *execLine) String() string {
	raws := []string{e.Command()}
	for _, f := range e.flags {
		var fr []string
		for _, w := range f.words {
			fr = append(fr, w.raw)
		}
		raws = append(raws, strings.Join(fr, " "))
	}
	return strings.Join(raws, " \\\n  ")
}

// dropIn is a parsed drop-in or unit: its leading comment and its options; exec indexes the ExecStart
// that runs (the last non-empty one of [Service]).
type dropIn struct {
	comment []byte
	opts    []*unit.UnitOption
	exec    int
}

func parseDropIn(b []byte) (*dropIn, error) {
	d := &dropIn{exec: -1}
	for rest := b; len(rest) > 0; {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && t[0] != ';' {
			break
		}
		d.comment = append(d.comment, line...)
		d.comment = append(d.comment, '\n')
		rest = next
	}
	opts, err := unit.Deserialize(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	d.opts = opts
	for i, o := range opts {
		if o.Section == "Service" && o.Name == "ExecStart" && strings.TrimSpace(o.Value) != "" {
			d.exec = i
		}
	}
	if d.exec < 0 {
		return nil, fmt.Errorf("no ExecStart with a command in its [Service] section")
	}
	return d, nil
}

// EnvFile is the first EnvironmentFile= of the [Service] section ("" when none), where the variables
// ExecStart names are written (StorageOS's /etc/etcd.conf of node addresses).
func (d *dropIn) EnvFile() string {
	for _, o := range d.opts {
		if o.Section == "Service" && o.Name == "EnvironmentFile" && strings.TrimSpace(o.Value) != "" {
			return strings.TrimPrefix(strings.TrimSpace(o.Value), "-")
		}
	}
	return ""
}

// vars is the environment systemd gives ExecStart from this file's [Service] Environment= and
// EnvironmentFile= settings, in order (a later setting wins; an EnvironmentFile= with "-" that is
// missing is skipped, as systemd does). read reads an EnvironmentFile.
func (d *dropIn) vars(read func(string) ([]byte, error)) (map[string]string, error) {
	vars := map[string]string{}
	for _, o := range d.opts {
		v := strings.TrimSpace(o.Value)
		switch {
		case o.Section != "Service" || v == "":
		case o.Name == "Environment":
			words, err := splitExec(v, nil)
			if err != nil {
				return nil, fmt.Errorf("Environment=%s: %w", v, err)
			}
			for _, w := range words {
				if k, val, ok := strings.Cut(w.value, "="); ok {
					vars[k] = val
				}
			}
		case o.Name == "EnvironmentFile":
			path := strings.TrimPrefix(v, "-")
			b, err := read(path)
			if errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(v, "-") {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("EnvironmentFile %s: %w", path, err)
			}
			maps.Copy(vars, parseVars(b))
		}
	}
	return vars, nil
}

// newDropIn is a drop-in that replaces the unit's ExecStart with command (raw words, e.g.
// "/usr/bin/etcd") and no flags yet.
func newDropIn(command string) (*dropIn, error) {
	e, err := parseExec(command, nil)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	if len(e.flags) > 0 {
		return nil, fmt.Errorf("command %q holds flags: give the words before the flags, e.g. /usr/bin/etcd", command)
	}
	return &dropIn{
		comment: []byte("# etcd's flags for this member (written by etcdops.etcd etcd_member_config)\n"),
		opts: []*unit.UnitOption{unit.NewUnitOption("Service", "ExecStart", ""),
			unit.NewUnitOption("Service", "ExecStart", command)},
		exec: 1,
	}, nil
}

func (d *dropIn) render(e *execLine) ([]byte, error) {
	d.opts[d.exec].Value = e.String()
	body, err := io.ReadAll(unit.Serialize(d.opts))
	if err != nil {
		return nil, err
	}
	return append(append([]byte{}, d.comment...), body...), nil
}

// Command is the ExecStart words before the flags, as written.
func (e *execLine) Command() string {
	var raws []string
	for _, w := range e.command {
		raws = append(raws, w.raw)
	}
	return strings.Join(raws, " ")
}

// Flags is the outcome of reading or writing a unit or drop-in whose ExecStart passes etcd's flags.
type Flags struct {
	Data    []byte            // the file's text after the changes (b itself when nothing changed)
	Env     map[string]string // the flags as ETCD_* settings, expanded as systemd does
	Command string            // the ExecStart words before the flags, as written
}

// ApplyFlags writes changes into a unit's or drop-in's ExecStart flags; with b nil (no file yet) it
// starts from a drop-in running command. With read, ${NAME} in ExecStart is expanded from the file's
// Environment= and EnvironmentFile= (read reads those files) and a written flag names the variables
// whose values it holds; without, ExecStart is read as written. A file that already says so comes
// back unchanged, byte for byte.
func ApplyFlags(b []byte, command string, changes []Change, read func(string) ([]byte, error)) (*Flags, error) {
	var d *dropIn
	var err error
	if b == nil {
		d, err = newDropIn(command)
	} else {
		d, err = parseDropIn(b)
	}
	if err != nil {
		return nil, err
	}
	var vars map[string]string
	if read != nil {
		if vars, err = d.vars(read); err != nil {
			return nil, err
		}
	}
	e, err := parseExec(strings.TrimSpace(d.opts[d.exec].Value), vars)
	if err != nil {
		return nil, err
	}
	out := &Flags{Data: b, Env: e.env(), Command: e.Command()}
	if !e.apply(changes) && b != nil {
		return out, nil
	}
	out.Env = e.env()
	out.Data, err = d.render(e)
	return out, err
}

// ReadDropIn returns the ETCD_* settings the drop-in's ExecStart passes as flags (as written, nothing
// expanded) and the command before them.
func ReadDropIn(b []byte) (env map[string]string, command string, err error) {
	f, err := ApplyFlags(b, "", nil, nil)
	if err != nil {
		return nil, "", err
	}
	return f.Env, f.Command, nil
}

// ApplyDropIn is ApplyFlags without expansion, returning the text.
func ApplyDropIn(b []byte, command string, changes []Change) ([]byte, error) {
	f, err := ApplyFlags(b, command, changes, nil)
	if err != nil {
		return nil, err
	}
	return f.Data, nil
}
