package masterconfig

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The edits change the file's text where the yaml.v3 nodes say, never re-encoding the document: every
// other byte stays (indentation, quoting, trailing spaces, comments, CRLF), and a switch followed by its
// rollback gives the file back byte for byte. Each edit parses the text again, so the next one sees
// fresh positions.

// lines returns the file's lines without their line ends.
func (c *Config) lines() []string {
	ls := strings.Split(string(c.data), "\n")
	if len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1] // the newline ending the last line
	}
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	return ls
}

// lineStart is the offset of line's first byte (1-based); past the last line, the end of the text.
func (c *Config) lineStart(line int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(c.data[off:], '\n')
		if i < 0 {
			return len(c.data)
		}
		off += i + 1
	}
	return off
}

// nl is the file's line end.
func (c *Config) nl() string {
	if i := bytes.IndexByte(c.data, '\n'); i > 0 && c.data[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// splice replaces the text between two offsets and parses the result.
func (c *Config) splice(start, end int, with string) error {
	out := make([]byte, 0, len(c.data)+len(with))
	out = append(append(append(out, c.data[:start]...), with...), c.data[end:]...)
	old := c.data
	c.data = out
	if err := c.parse(); err != nil {
		c.data = old
		_ = c.parse()
		return fmt.Errorf("%s: the edit would not parse (%v); nothing was changed", c.Path, err)
	}
	return nil
}

// insertAfter inserts whole lines after line (0: at the top). After a last line without a line end, the
// file keeps ending without one.
func (c *Config) insertAfter(line int, text []string) error {
	at := c.lineStart(line + 1)
	if c.noFinalNewline(at) {
		return c.splice(at, at, c.nl()+strings.Join(text, c.nl()))
	}
	return c.splice(at, at, strings.Join(text, c.nl())+c.nl())
}

// deleteLines removes lines first..last, with their line ends (the last line of a file without a final
// line end: with the line end before it).
func (c *Config) deleteLines(first, last int) error {
	start, end := c.lineStart(first), c.lineStart(last+1)
	if c.noFinalNewline(end) && first > 1 {
		start -= len(c.nl())
	}
	return c.splice(start, end, "")
}

// noFinalNewline: offset at is the end of a file whose last line has no line end.
func (c *Config) noFinalNewline(at int) bool {
	return at == len(c.data) && len(c.data) > 0 && c.data[len(c.data)-1] != '\n'
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func isCommentOrBlank(s string) bool {
	t := strings.TrimSpace(s)
	return t == "" || strings.HasPrefix(t, "#")
}

// entryEnd is the last line of a mapping entry: the key's line, then each following line indented deeper
// than the key, or as deep and starting with "- " (a block sequence written level with its key); blank
// and comment lines neither end it nor count.
func (c *Config) entryEnd(key *yaml.Node) int {
	ls, k := c.lines(), key.Column-1
	last := key.Line
	for l := key.Line + 1; l <= len(ls); l++ {
		s := ls[l-1]
		if isCommentOrBlank(s) {
			continue
		}
		in := indentOf(s)
		if in < k || in == k && !strings.HasPrefix(s[in:], "-") {
			break
		}
		last = l
	}
	return last
}

// tokenEnd is the offset just past a scalar or one-line flow collection that starts at offset start on
// its line: quoted up to its closing quote, a flow collection up to its closing bracket, plain up to a
// comment or the line's end (trailing spaces excluded).
func tokenEnd(line string, start int) int {
	switch s := line[start:]; {
	case strings.HasPrefix(s, `"`):
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
			} else if s[i] == '"' {
				return start + i + 1
			}
		}
	case strings.HasPrefix(s, "'"):
		for i := 1; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					i++
					continue
				}
				return start + i + 1
			}
		}
	case strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{"):
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '[', '{':
				depth++
			case ']', '}':
				if depth--; depth == 0 {
					return start + i + 1
				}
			}
		}
	default:
		if i := strings.Index(s, " #"); i >= 0 {
			s = s[:i]
		}
		return start + len(strings.TrimRight(s, " \t"))
	}
	return len(line)
}

// replaceToken replaces the node's text (a scalar, or a flow collection on one line) with text.
func (c *Config) replaceToken(n *yaml.Node, text string) error {
	line := c.lines()[n.Line-1]
	start := n.Column - 1
	base := c.lineStart(n.Line)
	return c.splice(base+start, base+tokenEnd(line, start), text)
}

// quoted renders value in the quoting style of the scalar it replaces.
func quoted(n *yaml.Node, value string) string {
	switch n.Style {
	case yaml.DoubleQuotedStyle:
		return `"` + value + `"`
	case yaml.SingleQuotedStyle:
		return "'" + value + "'"
	}
	return value
}

// seqDash is how far right of its key a block sequence's dash sits in this file (0: level with the key,
// as openshift-ansible writes it), from the first block sequence under a mapping key.
func (c *Config) seqDash() int {
	var find func(n *yaml.Node) (int, bool)
	find = func(n *yaml.Node) (int, bool) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 && v.Content[0].Line > k.Line {
					return v.Content[0].Column - 3 - (k.Column - 1), true // an item's text starts after "- "
				}
			}
		}
		for _, ch := range n.Content {
			if d, ok := find(ch); ok {
				return d, true
			}
		}
		return 0, false
	}
	if d, ok := find(&c.doc); ok && d >= 0 {
		return d
	}
	return 0
}

// blockEntry renders "key:" and its one-per-line list at indent.
func (c *Config) blockEntry(indent int, key string, values []string) []string {
	pad := strings.Repeat(" ", indent)
	out := []string{pad + key + ":"}
	for _, v := range values {
		out = append(out, pad+strings.Repeat(" ", c.seqDash())+"- "+v)
	}
	return out
}
