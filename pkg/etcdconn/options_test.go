package etcdconn

import (
	"errors"
	"strings"
	"testing"
)

// Each connection failure's explanation names the option to fix, with the prefix of a dict option
// (etcd_v2_copy's source. and destination.).
func TestExplainNamesTheOption(t *testing.T) {
	o := &Options{Prefix: "destination."}
	for cause, want := range map[string]string{
		"dial tcp 127.0.0.1:1: connect: connection refused":                            "destination.endpoints",
		"context deadline exceeded":                                                    "check destination.endpoints",
		"x509: certificate is valid for etcd1, not etcd9":                              "set destination.endpoints to a name or IP",
		"tls: first record does not look like a TLS handshake":                         "set destination.endpoints to http://",
		"x509: certificate signed by unknown authority":                                "destination.ca_cert",
		"remote error: tls: certificate required":                                      "destination.client_cert/destination.client_key",
		"etcdserver: authentication failed, invalid user ID or password":               "destination.user and destination.password",
		"110: The request requires user authentication (Insufficient credentials) [0]": "destination.user and destination.password",
		"client: response is invalid json. The endpoint is probably not valid":         "destination.endpoints serve no v2 API",
	} {
		err := o.Explain("https://10.0.0.9:2379", errors.New(cause))
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "https://10.0.0.9:2379: "+cause) {
			t.Errorf("%s: %v, want the endpoint, the cause and %q", cause, err, want)
		}
	}
}
