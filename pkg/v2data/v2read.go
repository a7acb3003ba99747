package v2data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/etcdops/etcd/pkg/etcdconn"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// v2Reader GETs v2 nodes over HTTP and decodes the answers itself. Reading is a copy's bottleneck,
// and in it the client's JSON decoding: values are JSON text, so every one is full of escaped
// quotes, and general decoders (encoding/json, the v2 client's jsoniter) then unescape byte by byte
// at ≈100 MB/s. Copying the runs between escapes is several times faster.
type v2Reader struct {
	hc      *http.Client
	conn    etcdconn.Options // endpoints, credentials, and the option prefix errors name ("source.", "destination.")
	pinned  atomic.Int32     // the endpoint that answered last: tried first, so a dead one costs once
	cluster atomic.Value     // string: the X-Etcd-Cluster-Id of the last answer
}

func newV2Reader(o etcdconn.Options) (*v2Reader, error) {
	tr, err := o.V2Transport()
	if err != nil {
		return nil, err
	}
	tr.ResponseHeaderTimeout = o.CommandTimeout
	return &v2Reader{hc: &http.Client{Transport: tr}, conn: o}, nil
}

// explain names the side (source or destination), the endpoint and the option to fix for a failed request.
func (r *v2Reader) explain(endpoint string, err error) error {
	err = r.conn.Explain(endpoint, err)
	if side := strings.TrimSuffix(r.conn.Prefix, "."); side != "" {
		return fmt.Errorf("%s: %w", side, err)
	}
	return err
}

// get returns the node at key (nil when absent) with its children if it is a directory, sorted.
// It tries the endpoints in order until one answers.
func (r *v2Reader) get(ctx context.Context, key string) (*clientv2.Node, error) {
	var last error
	first := int(r.pinned.Load())
	eps := r.conn.Endpoints
	for i := range eps {
		at := (first + i) % len(eps)
		u, err := url.Parse(eps[at])
		if err != nil {
			return nil, fmt.Errorf("%sendpoints: %q is not a URL (%v); give URLs such as https://10.0.0.1:2379", r.conn.Prefix, eps[at], err)
		}
		u.Path, u.RawQuery = "/v2/keys"+key, "sorted=true"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		if r.conn.User != "" {
			req.SetBasicAuth(r.conn.User, r.conn.Password)
		}
		resp, err := r.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = r.explain(eps[at], err)
			continue
		}
		if id := resp.Header.Get("X-Etcd-Cluster-Id"); id != "" {
			r.cluster.Store(id)
		}
		n, answered, err := readAnswer(resp, key, r.conn.Prefix)
		if !answered {
			last = r.explain(eps[at], err)
			continue
		}
		r.pinned.Store(int32(at))
		return n, err
	}
	return nil, last
}

// clusterID is the ID of the cluster the endpoints answer for (every v2 answer carries it).
func (r *v2Reader) clusterID(ctx context.Context) (string, error) {
	if _, err := r.get(ctx, "/"); err != nil {
		return "", err
	}
	id, _ := r.cluster.Load().(string)
	return id, nil
}

// bodies holds response buffers for reuse: a walk reads the whole store, and a fresh buffer per
// answer is zeroed memory the size of every value. Decoded strings are copies, never views.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readAnswer decodes one response; answered is false when the body could not be read (try another
// endpoint).
func readAnswer(resp *http.Response, key, param string) (n *clientv2.Node, answered bool, err error) {
	buf := bodies.Get().(*bytes.Buffer)
	defer bodies.Put(buf)
	buf.Reset()
	buf.Grow(int(max(resp.ContentLength, 512)) + 1)
	_, err = io.Copy(buf, resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, false, err
	}
	body := buf.Bytes()
	if resp.StatusCode == http.StatusOK {
		n, err = decodeNode(body)
		return n, true, err
	}
	var e clientv2.Error
	if json.Unmarshal(body, &e) == nil && e.Code != 0 {
		switch e.Code {
		case clientv2.ErrorCodeKeyNotFound:
			return nil, true, nil
		case clientv2.ErrorCodeUnauthorized:
			return nil, true, fmt.Errorf("%w (check %suser and %spassword)", e, param, param)
		}
		return nil, true, e
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized {
		why := etcdconn.NoV2
		if resp.StatusCode == http.StatusUnauthorized {
			why = "refused the credentials; check " + param + "user and " + param + "password"
		}
		return nil, true, fmt.Errorf("GET %s: %s: %.200s (%sendpoints %s)", key, resp.Status, body, param, why)
	}
	return nil, true, fmt.Errorf("GET %s: %s: %.200s", key, resp.Status, body)
}

// decodeNode reads the "node" of a v2 GET answer.
func decodeNode(b []byte) (*clientv2.Node, error) {
	p := &jparser{b: b}
	var n *clientv2.Node
	err := p.object(func(field string) (err error) {
		if field == "node" {
			n, err = p.node()
			return err
		}
		return p.skip()
	})
	if err == nil && n == nil {
		err = errors.New("v2 answer without a node")
	}
	return n, err
}

// jparser decodes the JSON of v2 answers: objects, arrays, strings, numbers, booleans, null.
type jparser struct {
	b []byte
	i int
}

func (p *jparser) fail(want string) error {
	return fmt.Errorf("v2 answer: want %s at byte %d of %d", want, p.i, len(p.b))
}

func (p *jparser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\r' || p.b[p.i] == '\t') {
		p.i++
	}
}

// peek skips whitespace and returns the next byte (0 at the end).
func (p *jparser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jparser) null() bool {
	if p.peek() == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return true
	}
	return false
}

// object calls field for each member; field must consume the value.
func (p *jparser) object(field func(name string) error) error {
	if p.null() {
		return nil
	}
	if p.peek() != '{' {
		return p.fail("{")
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		name, err := p.str()
		if err != nil {
			return err
		}
		if p.peek() != ':' {
			return p.fail(":")
		}
		p.i++
		if err := field(name); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail(", or }")
		}
	}
}

func (p *jparser) array(elem func() error) error {
	if p.null() {
		return nil
	}
	if p.peek() != '[' {
		return p.fail("[")
	}
	p.i++
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail(", or ]")
		}
	}
}

func (p *jparser) node() (*clientv2.Node, error) {
	if p.null() {
		return nil, nil
	}
	n := &clientv2.Node{}
	err := p.object(func(field string) (err error) {
		switch field {
		case "key":
			n.Key, err = p.str()
		case "value":
			n.Value, err = p.str()
		case "dir":
			n.Dir, err = p.boolean()
		case "ttl":
			n.TTL, err = p.int()
		case "createdIndex":
			n.CreatedIndex, err = p.uint()
		case "modifiedIndex":
			n.ModifiedIndex, err = p.uint()
		case "expiration":
			var s string
			if s, err = p.str(); err == nil {
				var t time.Time
				t, err = time.Parse(time.RFC3339Nano, s)
				n.Expiration = &t
			}
		case "nodes":
			err = p.array(func() error {
				c, err := p.node()
				if c != nil {
					n.Nodes = append(n.Nodes, c)
				}
				return err
			})
		default:
			err = p.skip()
		}
		return err
	})
	return n, err
}

// str decodes a string. An escaped one (every value: values are JSON text, full of quotes) is
// unescaped into memory of its own, sized by its closing quote and not zeroed (a strings.Builder),
// that the string then keeps: one copy of each value rather than two. Runs between escapes are
// copied whole.
func (p *jparser) str() (string, error) {
	if p.peek() != '"' {
		return "", p.fail(`"`)
	}
	p.i++
	end := p.closingQuote()
	if end < 0 {
		return "", p.fail(`closing "`)
	}
	raw := p.b[p.i:end]
	p.i = end + 1
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), nil
	}
	var out strings.Builder
	out.Grow(len(raw))
	for {
		bs := bytes.IndexByte(raw, '\\')
		if bs < 0 {
			out.Write(raw)
			return out.String(), nil
		}
		out.Write(raw[:bs])
		c := raw[bs+1] // a closing quote is never escaped, so an escape is never last
		raw = raw[bs+2:]
		switch c {
		case '"', '\\', '/':
			out.WriteByte(c)
		case 'b':
			out.WriteByte('\b')
		case 'f':
			out.WriteByte('\f')
		case 'n':
			out.WriteByte('\n')
		case 'r':
			out.WriteByte('\r')
		case 't':
			out.WriteByte('\t')
		case 'u':
			r, ok := hex4(raw)
			if !ok {
				return "", p.fail(`\uXXXX`)
			}
			raw = raw[4:]
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; a lone half becomes U+FFFD, as in encoding/json.
				r2, ok := rune(0), false
				if bytes.HasPrefix(raw, []byte(`\u`)) {
					r2, ok = hex4(raw[2:])
				}
				if r = utf16.DecodeRune(r, r2); ok && r != utf8.RuneError {
					raw = raw[6:]
				}
			}
			out.WriteRune(r)
		default:
			return "", p.fail("a valid escape")
		}
	}
}

// closingQuote returns the index of the quote that ends the string starting at p.i (-1: none): the
// first one not escaped, i.e. not after an odd number of backslashes.
func (p *jparser) closingQuote() int {
	for from := p.i; ; {
		q := bytes.IndexByte(p.b[from:], '"')
		if q < 0 {
			return -1
		}
		q += from
		n := 0
		for k := q - 1; k >= p.i && p.b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		from = q + 1
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(v), err == nil
}

// token returns the bytes of a number or literal.
func (p *jparser) token() []byte {
	p.ws()
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			return p.b[start:p.i]
		}
		p.i++
	}
	return p.b[start:p.i]
}

func (p *jparser) int() (int64, error) {
	n, err := strconv.ParseInt(string(p.token()), 10, 64)
	if err != nil {
		return 0, p.fail("an integer")
	}
	return n, nil
}

func (p *jparser) uint() (uint64, error) {
	n, err := strconv.ParseUint(string(p.token()), 10, 64)
	if err != nil {
		return 0, p.fail("an unsigned integer")
	}
	return n, nil
}

func (p *jparser) boolean() (bool, error) {
	switch string(p.token()) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, p.fail("true or false")
}

// skip consumes any value.
func (p *jparser) skip() error {
	switch p.peek() {
	case '{':
		return p.object(func(string) error { return p.skip() })
	case '[':
		return p.array(p.skip)
	case '"':
		_, err := p.str()
		return err
	}
	if len(p.token()) == 0 {
		return p.fail("a value")
	}
	return nil
}
