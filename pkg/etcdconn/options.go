// Package etcdconn holds the connection options every etcd module shares, and turns them into v3 and
// v2 clients with TLS. Absent options fall back to etcdctl's environment variables, so the runbooks'
// `export ETCDCTL_*` habit carries over.
package etcdconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/etcdops/etcd/pkg/endpoint"
	"github.com/etcdops/etcd/pkg/module"
)

// Options are the connection parameters; embed them in a module's params struct.
type Options struct {
	Endpoints      []string      `arg:"endpoints" env:"ETCDCTL_ENDPOINTS" default:"https://127.0.0.1:2379"`
	CACert         string        `arg:"ca_cert" type:"path" env:"ETCDCTL_CACERT,ETCDCTL_CA_FILE"`
	ClientCert     string        `arg:"client_cert" type:"path" env:"ETCDCTL_CERT,ETCDCTL_CERT_FILE"`
	ClientKey      string        `arg:"client_key" type:"path" env:"ETCDCTL_KEY,ETCDCTL_KEY_FILE"`
	User           string        `arg:"user" env:"ETCDCTL_USER"`
	Password       string        `arg:"password" env:"ETCDCTL_PASSWORD" secret:"true"`
	DialTimeout    time.Duration `arg:"dial_timeout" default:"5s"`
	CommandTimeout time.Duration `arg:"command_timeout" default:"30s"`

	// Prefix names the parameters in errors when a module takes several connection sets
	// (e.g. "source." for etcd_v2_copy). Not a parameter.
	Prefix string
}

// Validate checks the options without contacting etcd: files exist and are readable PEM, the
// endpoint schemes agree with the TLS settings.
func (o *Options) Validate() error {
	if len(o.Endpoints) == 0 {
		return o.err("endpoints", "is empty; give at least one https://HOST:2379 endpoint")
	}
	if (o.ClientCert == "") != (o.ClientKey == "") {
		return o.err("client_cert", "client_cert and client_key go together; set both or neither")
	}
	if o.User != "" && strings.Contains(o.User, ":") && o.Password != "" {
		return o.err("user", "give the password in password, not as user:password")
	}
	tlsSet := o.CACert != "" || o.ClientCert != ""
	for i, ep := range o.Endpoints {
		if msg := endpoint.Problem(ep, o.Prefix); msg != "" {
			return o.err("endpoints", msg)
		}
		if strings.HasPrefix(strings.ToLower(ep), "http://") && tlsSet {
			return o.err("endpoints", fmt.Sprintf("%q uses http:// while ca_cert/client_cert are set; "+
				"use https:// (the certificates are only used over TLS) or drop the TLS parameters", ep))
		}
		o.Endpoints[i] = strings.TrimRight(ep, "/")
	}
	for name, path := range map[string]string{"ca_cert": o.CACert, "client_cert": o.ClientCert, "client_key": o.ClientKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return o.err(name, fmt.Sprintf("cannot read %s: %v; check the path on the host the task runs on", path, errors.Unwrap(err)))
		}
	}
	if o.DialTimeout <= 0 {
		return o.err("dial_timeout", "must be greater than 0, e.g. 5s")
	}
	if o.CommandTimeout <= 0 {
		return o.err("command_timeout", "must be greater than 0, e.g. 30s")
	}
	return nil
}

func (o *Options) err(param, msg string) error {
	return &module.ParamError{Param: o.Prefix + param, Msg: msg}
}

// UsesTLS reports whether any endpoint is https.
func (o *Options) UsesTLS() bool {
	for _, ep := range o.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			return true
		}
	}
	return false
}

// TLSConfig builds the client TLS configuration, or nil for plain http endpoints.
func (o *Options) TLSConfig() (*tls.Config, error) {
	if !o.UsesTLS() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, o.err("ca_cert", err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, o.err("ca_cert", fmt.Sprintf("%s holds no PEM certificate; point it at the CA that signed the etcd server certificates (e.g. /etc/etcd/ca.crt)", o.CACert))
		}
		cfg.RootCAs = pool
	}
	if o.ClientCert != "" {
		pair, err := tls.LoadX509KeyPair(o.ClientCert, o.ClientKey)
		if err != nil {
			return nil, o.err("client_cert", fmt.Sprintf("cannot load the key pair %s / %s: %v", o.ClientCert, o.ClientKey, err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// NoV2 says why an endpoint answers the v2 API with 404.
const NoV2 = "serve no v2 API (etcd 3.4/3.5 needs --enable-v2; 3.6 has none)"

// Explain turns a low-level connection error into one that tells the user what to check.
func (o *Options) Explain(endpoint string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var hint string
	switch {
	case strings.Contains(msg, "certificate signed by unknown authority"):
		hint = o.Prefix + "ca_cert does not sign the server's certificate; use the etcd CA (e.g. /etc/etcd/ca.crt)"
	case strings.Contains(msg, "bad certificate") || strings.Contains(msg, "certificate required"):
		hint = "the server rejected the client certificate; set " + o.Prefix + "client_cert/" + o.Prefix + "client_key to a pair signed by the etcd client CA"
	case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "doesn't contain any IP SANs"):
		hint = "the server certificate does not name this endpoint; set " + o.Prefix + "endpoints to a name or IP listed in its SANs"
	case strings.Contains(msg, "first record does not look like a TLS handshake") || strings.Contains(msg, "server gave HTTP response"):
		hint = "the endpoint speaks plain http; set " + o.Prefix + "endpoints to http:// without TLS parameters, or enable TLS on etcd"
	case strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe"):
		// TLS 1.3 finishes the client's handshake before the server checks the client certificate;
		// a rejection then often arrives as a reset rather than as the "certificate required" alert.
		hint = "the server closed the connection; usually it rejected the client certificate: set " + o.Prefix +
			"client_cert/" + o.Prefix + "client_key to a pair signed by the etcd client CA (or etcd was restarting)"
	case strings.Contains(msg, "connection refused"):
		hint = "nothing listens there; check that etcd runs, and the host and port in " + o.Prefix + "endpoints"
	case isTimeout(err) || strings.Contains(msg, "context deadline exceeded"):
		hint = "no answer in time; check " + o.Prefix + "endpoints, firewalls and that the member is up (or raise " + o.Prefix + "dial_timeout/" + o.Prefix + "command_timeout)"
	case strings.Contains(msg, "response is invalid json") || strings.Contains(msg, "404 page not found"):
		hint = o.Prefix + "endpoints " + NoV2
	case strings.Contains(msg, "authentication failed") || strings.Contains(msg, "invalid auth token") || strings.Contains(msg, "user name is empty") ||
		strings.Contains(msg, "requires user authentication"): // the last: v2 auth (error 110)
		hint = "check " + o.Prefix + "user and " + o.Prefix + "password"
	}
	if hint == "" {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	return fmt.Errorf("%s: %w (%s)", endpoint, err, hint)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
