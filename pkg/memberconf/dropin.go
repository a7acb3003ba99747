package memberconf

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// word is one word of an ExecStart line: raw as written (kept verbatim when untouched, so $ETCD_OPTS
// and the author's quoting survive) and its value after systemd's unquoting.
type word struct{ raw, value string }

// splitExec splits an ExecStart value into words as systemd does for the cases a unit holds: blanks
// and backslash-newline continuations separate words; single or double quotes (anywhere in a word)
// group; a backslash escapes the next character; "%%" and "$$" stand for "%" and "$".
func splitExec(s string) ([]word, error) {
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
}

func parseExec(s string) (*execLine, error) {
	words, err := splitExec(s)
	if err != nil {
		return nil, err
	}
	e := &execLine{}
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
				if f.value != *c.Value || len(f.words) != 1 {
					f = newFlag(name, *c.Value)
				}
				kept = append(kept, f)
			}
			done = true
		}
		if c.Value != nil && !done {
			kept = append(kept, newFlag(name, *c.Value))
		}
		e.flags = kept
	}
	return e.String() != before
}

func newFlag(name, value string) flag {
	return flag{words: []word{{raw: quoteWord("--" + name + "=" + value)}}, name: name, value: value}
}

// quoteWord writes a word so that splitExec (and systemd) read it back as s: specifiers and variables
// escaped, double quotes when it holds anything beyond plain URL and path characters.
func quoteWord(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/=@+%$", r)) {
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

// dropIn is a parsed drop-in: its leading comment and its options; exec indexes the ExecStart that
// runs (the last non-empty one of [Service]).
type dropIn struct {
	comment []byte
	opts    []*unit.UnitOption
	exec    int
}

func parseDropIn(b []byte) (*dropIn, *execLine, error) {
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
		return nil, nil, err
	}
	d.opts = opts
	for i, o := range opts {
		if o.Section == "Service" && o.Name == "ExecStart" && strings.TrimSpace(o.Value) != "" {
			d.exec = i
		}
	}
	if d.exec < 0 {
		return nil, nil, fmt.Errorf("no ExecStart with a command in its [Service] section")
	}
	e, err := parseExec(strings.TrimSpace(opts[d.exec].Value))
	if err != nil {
		return nil, nil, err
	}
	return d, e, nil
}

// newDropIn is a drop-in that replaces the unit's ExecStart with command (raw words, e.g.
// "/usr/bin/etcd") and no flags yet.
func newDropIn(command string) (*dropIn, *execLine, error) {
	e, err := parseExec(command)
	if err != nil {
		return nil, nil, fmt.Errorf("command: %w", err)
	}
	if len(e.flags) > 0 {
		return nil, nil, fmt.Errorf("command %q holds flags: give the words before the flags, e.g. /usr/bin/etcd", command)
	}
	return &dropIn{
		comment: []byte("# etcd's flags for this member (written by etcdops.etcd etcd_member_config)\n"),
		opts: []*unit.UnitOption{unit.NewUnitOption("Service", "ExecStart", ""),
			unit.NewUnitOption("Service", "ExecStart", "")},
		exec: 1,
	}, e, nil
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

// ReadDropIn returns the ETCD_* settings the drop-in's ExecStart passes as flags and the command
// before them.
func ReadDropIn(b []byte) (env map[string]string, command string, err error) {
	_, e, err := parseDropIn(b)
	if err != nil {
		return nil, "", err
	}
	return e.env(), e.Command(), nil
}

// ApplyDropIn writes changes into a drop-in's ExecStart flags; with b nil (no file yet) it starts from
// a drop-in running command. A drop-in that already says so comes back unchanged, byte for byte.
func ApplyDropIn(b []byte, command string, changes []Change) ([]byte, error) {
	var d *dropIn
	var e *execLine
	var err error
	if b == nil {
		d, e, err = newDropIn(command)
	} else {
		d, e, err = parseDropIn(b)
	}
	if err != nil {
		return nil, err
	}
	if !e.apply(changes) && b != nil {
		return b, nil
	}
	return d.render(e)
}
