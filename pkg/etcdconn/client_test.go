package etcdconn

import (
	"net"
	"strings"
	"testing"
	"time"
)

// Refused tells a stopped member (nothing listens) at once, and leaves everything else to the client.
func TestRefused(t *testing.T) {
	o := Options{DialTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := "https://" + l.Addr().String()
	if err := o.Refused(open); err != nil {
		t.Fatalf("a listening endpoint: %v", err)
	}
	l.Close()
	began := time.Now()
	if err := o.Refused(open); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("a closed port: %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("a refused connection took %s to tell", d)
	}
	for _, ep := range []string{"https://127.0.0.1", "::not a url", "unix:///run/etcd.sock"} {
		if err := o.Refused(ep); err != nil {
			t.Fatalf("%s: %v (only the client can tell)", ep, err)
		}
	}
}
