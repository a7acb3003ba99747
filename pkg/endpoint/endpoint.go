// Package endpoint checks an etcd client URL as a user writes it (in a connection's endpoints, or in a
// master-config's etcdClientInfo.urls). It has no dependencies, so modules that never dial etcd can
// use it without linking the etcd client.
package endpoint

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Problem says what is wrong with a client URL, "" when nothing is: http or https, a host, a port in
// 1-65535, no credentials (a message quotes the URL without them, so the password is never echoed).
// prefix names the options user and password in the message (e.g. "source." for etcd_v2_copy).
func Problem(ep, prefix string) string {
	if strings.Contains(ep, "@") {
		return fmt.Sprintf("%q carries credentials; give them in %suser and %spassword, never in the URL (shown here without them)",
			withoutUserinfo(ep), prefix, prefix)
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Sprintf("%q is not a URL such as https://10.0.0.1:2379", ep)
	}
	if u.Port() == "" {
		return fmt.Sprintf("%q has no port; etcd clients listen on :2379 by default", ep)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q has port %s, not one of 1-65535; etcd clients listen on :2379 by default", ep, u.Port())
	}
	return ""
}

// withoutUserinfo is an endpoint without what precedes its last "@" (after the scheme): an error
// may quote it, even when it does not parse as a URL.
func withoutUserinfo(ep string) string {
	scheme, rest := "", ep
	if i := strings.Index(ep, "://"); i >= 0 {
		scheme, rest = ep[:i+3], ep[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "…@" + rest[i+1:]
	}
	return scheme + rest
}
