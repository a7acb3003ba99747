package member

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// normalizeURL canonicalises a peer URL so that comparisons are exact: lower-case scheme and host,
// IP addresses in their canonical form, no trailing slash. A URL with a path, query or no port is
// refused: etcd would reject it too, and a guess could match the wrong member.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not a peer URL such as https://10.0.0.4:2380", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q has a path, query or credentials; a peer URL is only scheme://host:port, e.g. https://10.0.0.4:2380", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || port == "" {
		return "", fmt.Errorf("%q has no port; etcd peers listen on :2380 by default, e.g. https://10.0.0.4:2380", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q has port %s, not one of 1-65535; etcd peers listen on :2380 by default", raw, port)
	}
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(host, port), nil
}

// sameURLs reports whether two URL lists hold the same URLs after normalisation, in any order.
// URLs that do not parse are compared as given.
func sameURLs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	na, nb := normalizeAll(a), normalizeAll(b)
	for i := range na {
		if na[i] != nb[i] {
			return false
		}
	}
	return true
}

// sharesURL reports whether any URL is in both lists (after normalisation).
func sharesURL(a, b []string) bool {
	set := map[string]bool{}
	for _, u := range normalizeAll(a) {
		set[u] = true
	}
	for _, u := range normalizeAll(b) {
		if set[u] {
			return true
		}
	}
	return false
}

func normalizeAll(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		if n, err := normalizeURL(u); err == nil {
			u = n
		}
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}
