// Package masterconfig reads and edits an OpenShift 3.x master-config.yaml as a yaml.v3 node tree, so
// the file keeps its comments, key order and quoting: the migration only touches the two
// apiServerArguments that select the API server's storage backend.
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

// Config is a parsed master-config.yaml.
type Config struct {
	Path string
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
	c := &Config{Path: path, mode: st.Mode().Perm()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c.doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s is not YAML: %v", path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		// Rewriting it would keep only the first document.
		return nil, fmt.Errorf("%s holds more than one YAML document (a \"---\" line after the first); a "+
			"master-config.yaml holds one: remove the others, or point path at the master's own configuration", path)
	}
	if c.root() == nil {
		return nil, fmt.Errorf("%s does not hold a YAML mapping (is it a master-config.yaml?)", path)
	}
	return c, nil
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
// tree changed. A file without kubernetesMasterConfig.apiServerArguments, or where either is not a
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
	if args.Kind != yaml.MappingNode { // null or empty: the installer's "apiServerArguments: null"
		*args = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: args.HeadComment, LineComment: args.LineComment}
	}
	a := setList(args, StorageBackendArg, Etcd3Backend)
	b := setList(args, MediaTypeArg, ProtobufMediaType)
	return a || b, nil
}

// UnsetEtcd3 removes both arguments (the documented rollback, seed 001 7.5 step 2); it reports whether
// the tree changed.
func (c *Config) UnsetEtcd3() (bool, error) {
	args, err := c.apiServerArguments()
	if err != nil || args == nil {
		return false, err
	}
	a := remove(args, StorageBackendArg)
	b := remove(args, MediaTypeArg)
	return a || b, nil
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
// list after a move to new hosts), keeping the comments on the key and the list; it reports whether the
// tree changed. A file without an etcdClientInfo mapping is not a master's configuration: refused, as
// the storage switch refuses one without apiServerArguments, rather than given the key.
func (c *Config) SetEtcdURLs(urls []string) (bool, error) {
	info := lookup(c.root(), "etcdClientInfo")
	if info == nil || info.Kind != yaml.MappingNode {
		return false, fmt.Errorf("%s: no etcdClientInfo mapping: not an OpenShift master's configuration; "+
			"check openshift_master_config (nothing was changed)", c.Path)
	}
	if slices.Equal(c.EtcdURLs(), urls) {
		return false, nil
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, u := range urls {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: u})
	}
	if v := lookup(info, "urls"); v != nil {
		seq.HeadComment, seq.LineComment, seq.FootComment = v.HeadComment, v.LineComment, v.FootComment
		*v = *seq
		return true, nil
	}
	info.Content = append(info.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "urls"}, seq)
	return true, nil
}

// Bytes renders the tree with the indentation OpenShift's installer writes: two spaces, and a
// sequence's dashes level with its key (go.yaml.in/yaml/v3, the maintained gopkg.in/yaml.v3, has
// the option), so an edit leaves the other lines as they were.
func (c *Config) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&c.doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

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
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// setList makes key a one-element list holding value, keeping the key's position and the comments
// on the key, the list and its first element.
func setList(n *yaml.Node, key, value string) bool {
	v := lookup(n, key)
	if v == nil {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
			&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}}})
		return true
	}
	if v.Kind == yaml.SequenceNode && len(v.Content) == 1 && v.Content[0].Value == value {
		return false
	}
	elem := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	if v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.ScalarNode {
		elem = v.Content[0]
		elem.Value, elem.Tag, elem.Style = value, "!!str", 0
	}
	*v = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: v.Style, HeadComment: v.HeadComment,
		LineComment: v.LineComment, FootComment: v.FootComment, Content: []*yaml.Node{elem}}
	return true
}

func remove(n *yaml.Node, key string) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return true
		}
	}
	return false
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
