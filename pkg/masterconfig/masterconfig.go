// Package masterconfig reads an OpenShift 3.x master-config.yaml as a yaml.v3 node tree and edits its
// text only where the nodes it changes are (splice.go): the migration touches the two apiServerArguments
// that select the API server's storage backend, a move of the cluster etcdClientInfo.urls, and nothing
// else of the file changes by a byte.
package masterconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The apiServerArguments that switch an OpenShift 3.6/3.7 API server to etcd3 (seed 001, 7.4 step 4).
const (
	StorageBackendArg = "storage-backend"
	MediaTypeArg      = "storage-media-type"
	Etcd3Backend      = "etcd3"
	ProtobufMediaType = "application/vnd.kubernetes.protobuf"
)

// TokenTTLs are the lifetimes the master configures for keys that carried a v2 TTL; nil when the file
// does not set them (the caller falls back to OpenShift's defaults).
type TokenTTLs struct {
	AccessTokenMaxAgeSeconds    *int64 `json:"access_token_max_age_seconds"`
	AuthorizeTokenMaxAgeSeconds *int64 `json:"authorize_token_max_age_seconds"`
	ControllerLeaseTTL          *int64 `json:"controller_lease_ttl"`
}

// Config is a master-config.yaml: its text, as edited so far, and that text parsed.
type Config struct {
	Path string
	data []byte
	doc  yaml.Node
	mode os.FileMode
}

// Load parses path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	c := &Config{Path: path, data: data, mode: st.Mode().Perm()}
	if err := c.parse(); err != nil {
		return nil, err
	}
	if c.root() == nil {
		return nil, fmt.Errorf("%s does not hold a YAML mapping (is it a master-config.yaml?)", path)
	}
	return c, nil
}

// parse reads c.data into c.doc.
func (c *Config) parse() error {
	c.doc = yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(c.data))
	if err := dec.Decode(&c.doc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s is not YAML: %v", c.Path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		// A tool that rewrites the file may keep only the first document; this one would not, but it
		// edits one master's configuration.
		return fmt.Errorf("%s holds more than one YAML document (a \"---\" line after the first); a "+
			"master-config.yaml holds one: remove the others, or point path at the master's own configuration", c.Path)
	}
	return nil
}

func (c *Config) root() *yaml.Node {
	if c.doc.Kind != yaml.DocumentNode || len(c.doc.Content) == 0 || c.doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	return c.doc.Content[0]
}

// StorageBackend returns the configured storage-backend ("" when unset, which OpenShift 3.6/3.7 reads
// as etcd2).
func (c *Config) StorageBackend() string {
	args := lookup(c.root(), "kubernetesMasterConfig", "apiServerArguments")
	v := lookup(args, StorageBackendArg)
	if v == nil {
		return ""
	}
	if v.Kind == yaml.SequenceNode && len(v.Content) > 0 {
		return v.Content[0].Value
	}
	return v.Value
}

// TTLs reads the token and lease lifetimes.
func (c *Config) TTLs() (TokenTTLs, error) {
	var t TokenTTLs
	var err error
	tokens := lookup(c.root(), "oauthConfig", "tokenConfig")
	if t.AccessTokenMaxAgeSeconds, err = intAt(tokens, "accessTokenMaxAgeSeconds"); err != nil {
		return t, err
	}
	if t.AuthorizeTokenMaxAgeSeconds, err = intAt(tokens, "authorizeTokenMaxAgeSeconds"); err != nil {
		return t, err
	}
	t.ControllerLeaseTTL, err = intAt(c.root(), "controllerLeaseTTL")
	return t, err
}

// SetEtcd3 sets storage-backend: [etcd3] and storage-media-type: [protobuf]; it reports whether the
// text changed. A file without kubernetesMasterConfig.apiServerArguments, or where either is not a
// mapping, is refused: it is not the configuration of a master's API server.
func (c *Config) SetEtcd3() (bool, error) {
	args, err := c.apiServerArguments()
	if err != nil {
		return false, err
	}
	if args == nil {
		return false, fmt.Errorf("%s has no kubernetesMasterConfig.apiServerArguments; it is not the configuration of an "+
			"OpenShift 3.x master's API server: point path at the master's master-config.yaml (nothing was added)", c.Path)
	}
	a, err := c.setList(StorageBackendArg, Etcd3Backend)
	if err != nil {
		return false, err
	}
	b, err := c.setList(MediaTypeArg, ProtobufMediaType)
	return a || b, err
}

// UnsetEtcd3 removes both arguments (the documented rollback, seed 001 7.5 step 2), their lines only;
// it reports whether the text changed.
func (c *Config) UnsetEtcd3() (bool, error) {
	changed := false
	for _, key := range []string{StorageBackendArg, MediaTypeArg} {
		args, err := c.apiServerArguments()
		if err != nil || args == nil {
			return changed, err
		}
		k, _ := entry(args, key)
		if k == nil {
			continue
		}
		if args.Style&yaml.FlowStyle != 0 {
			return changed, flowRefused(c.Path, "apiServerArguments", args)
		}
		if err := c.deleteLines(k.Line, c.entryEnd(k)); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// setList makes apiServerArguments' key a one-element list holding value: the element's text replaced
// where the key has one, else the key and its list added after the last entry (under a null
// apiServerArguments: after its line, one indentation step deeper).
func (c *Config) setList(key, value string) (bool, error) {
	args, err := c.apiServerArguments()
	if err != nil {
		return false, err
	}
	if args.Kind == yaml.MappingNode && args.Style&yaml.FlowStyle != 0 && len(args.Content) > 0 {
		return false, flowRefused(c.Path, "apiServerArguments", args)
	}
	if _, v := entry(args, key); v != nil {
		switch {
		case v.Kind == yaml.SequenceNode && len(v.Content) == 1 && v.Content[0].Value == value:
			return false, nil
		case v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) == 1 && v.Content[0].Kind == yaml.ScalarNode:
			return true, c.replaceToken(v.Content[0], quoted(v.Content[0], value))
		case v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0 && v.Line == lastLine(v):
			return true, c.replaceToken(v, "["+value+"]")
		}
		return false, fmt.Errorf("%s: %s (line %d) holds several values; set it to [%s] by hand (nothing was changed)",
			c.Path, key, v.Line, value)
	}
	if args.Kind == yaml.MappingNode && len(args.Content) > 0 {
		first := args.Content[0]
		return true, c.insertAfter(c.entryEnd(args.Content[len(args.Content)-2]), c.blockEntry(first.Column-1, key, []string{value}))
	}
	// null, empty or {}: the value's text goes, the entry comes on the lines after the key.
	outer, parent := entry(c.root(), "kubernetesMasterConfig")
	k, _ := entry(parent, "apiServerArguments")
	step := k.Column - outer.Column // the file's indentation step
	// "null", "~" or "{}" after the colon goes; a comment there stays.
	if !c.emptyAfterKey(k) {
		line, base, colon := c.lines()[k.Line-1], c.lineStart(k.Line), k.Column+len(k.Value)
		start := colon + len(line[colon:]) - len(strings.TrimLeft(line[colon:], " "))
		if err := c.splice(base+colon, base+tokenEnd(line, start), ""); err != nil {
			return false, err
		}
	}
	return true, c.insertAfter(k.Line, c.blockEntry(k.Column-1+step, key, []string{value}))
}

// emptyAfterKey: nothing but spaces or a comment follows the (plain) key's colon on its line.
func (c *Config) emptyAfterKey(k *yaml.Node) bool {
	line := c.lines()[k.Line-1]
	return isCommentOrBlank(line[min(len(line), k.Column+len(k.Value)):])
}

// lastLine is the line a node's text ends on, as far as its children tell.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, ch := range n.Content {
		l = max(l, lastLine(ch))
	}
	return l
}

func flowRefused(path, key string, n *yaml.Node) error {
	return fmt.Errorf("%s: %s (line %d) is written in flow style ({...}); write it as a block mapping, one "+
		"argument per line, then run again (nothing was changed)", path, key, n.Line)
}

// apiServerArguments is the node of kubernetesMasterConfig.apiServerArguments: nil when a key is
// missing, a null scalar when it is null or empty, an error naming the key that is something else.
func (c *Config) apiServerArguments() (*yaml.Node, error) {
	n := c.root()
	for _, key := range []string{"kubernetesMasterConfig", "apiServerArguments"} {
		v := lookup(n, key)
		switch {
		case v == nil:
			return nil, nil
		case v.Kind == yaml.MappingNode:
		case key == "apiServerArguments" && isNull(v):
		default:
			return nil, fmt.Errorf("%s: %s (line %d) is not a mapping; fix it by hand to the form "+
				"\"apiServerArguments: {storage-backend: [etcd2]}\" under kubernetesMasterConfig (nothing was changed)", c.Path, key, v.Line)
		}
		n = v
	}
	return n, nil
}

func isNull(v *yaml.Node) bool {
	return v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "")
}

// EtcdURLs returns etcdClientInfo.urls, the etcd client URLs the master connects to.
func (c *Config) EtcdURLs() []string {
	out := []string{}
	if v := lookup(c.root(), "etcdClientInfo", "urls"); v != nil && v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			out = append(out, e.Value)
		}
	}
	return out
}

// SetEtcdURLs makes etcdClientInfo.urls exactly urls, in that order (seed 003: the consumers' endpoint
// list after a move to new hosts), replacing the list's lines (or its flow text) and keeping the key and
// its comments; it reports whether the text changed. A file without an etcdClientInfo mapping is not a
// master's configuration: refused, as the storage switch refuses one without apiServerArguments, rather
// than given the key.
func (c *Config) SetEtcdURLs(urls []string) (bool, error) {
	info := lookup(c.root(), "etcdClientInfo")
	if info == nil || info.Kind != yaml.MappingNode || info.Style&yaml.FlowStyle != 0 {
		return false, fmt.Errorf("%s: no etcdClientInfo mapping written one key per line: not an OpenShift master's "+
			"configuration as the installer writes it; check openshift_master_config (nothing was changed)", c.Path)
	}
	if slices.Equal(c.EtcdURLs(), urls) {
		return false, nil
	}
	k, v := entry(info, "urls")
	switch {
	case k == nil:
		return true, c.insertAfter(c.entryEnd(info.Content[len(info.Content)-2]), c.blockEntry(info.Content[0].Column-1, "urls", urls))
	case v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0:
		items := c.blockEntry(k.Column-1, "urls", urls)[1:]
		dash := strings.Repeat(" ", v.Content[0].Column-3) // the list's own dash column
		for i, u := range urls {
			items[i] = dash + "- " + u
		}
		if err := c.deleteLines(v.Content[0].Line, c.entryEnd(k)); err != nil {
			return false, err
		}
		return true, c.insertAfter(k.Line, items)
	case v.Style&yaml.FlowStyle != 0 && v.Line == lastLine(v) || v.Kind == yaml.ScalarNode && v.Line == k.Line && !c.emptyAfterKey(k):
		return true, c.replaceToken(v, "["+strings.Join(urls, ", ")+"]")
	}
	return true, c.insertAfter(k.Line, c.blockEntry(k.Column-1, "urls", urls)[1:])
}

// Bytes is the file's text with the edits made so far.
func (c *Config) Bytes() ([]byte, error) { return c.data, nil }

// Save writes the tree back atomically (temp file + rename, same mode), after copying the current file
// to PATH.YYYYMMDDTHHMMSSZ (PATH.YYYYMMDDTHHMMSSZ.N when that exists: two writes in one second keep
// both backups); it returns the backup's path.
func (c *Config) Save(now time.Time) (string, error) {
	out, err := c.Bytes()
	if err != nil {
		return "", err
	}
	old, err := os.ReadFile(c.Path)
	if err != nil {
		return "", err
	}
	backup, err := writeNew(c.Path+"."+now.UTC().Format("20060102T150405Z"), old, c.mode)
	if err != nil {
		return "", fmt.Errorf("backup of %s: %v", c.Path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.Path), ".master-config-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(c.mode); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return backup, os.Rename(tmp.Name(), c.Path)
}

// writeNew writes data to name, or to name.1, name.2, … when it exists (never over a file), and returns
// the name it used.
func writeNew(name string, data []byte, mode os.FileMode) (string, error) {
	for i := 0; ; i++ {
		path := name
		if i > 0 {
			path = name + "." + strconv.Itoa(i)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return "", err
		}
		return path, f.Close()
	}
}

// lookup follows mapping keys; nil when any is missing or not a mapping.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if _, n = entry(n, k); n == nil {
			return nil
		}
	}
	return n
}

// entry returns a mapping's key node and value for key (nils when absent or n is no mapping).
func entry(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

func intAt(n *yaml.Node, key string) (*int64, error) {
	v := lookup(n, key)
	if v == nil || v.Tag == "!!null" {
		return nil, nil
	}
	i, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a whole number of seconds (line %d)", key, v.Value, v.Line)
	}
	return &i, nil
}
