package etcdconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// V3 connects a v3 client to all endpoints. It fails (explained) when no endpoint answers within
// dial_timeout. The caller closes it.
func (o *Options) V3() (*clientv3.Client, error) {
	return o.v3(o.Endpoints)
}

// V3Single connects to one endpoint only, for per-member questions (status, health).
func (o *Options) V3Single(endpoint string) (*clientv3.Client, error) {
	return o.v3([]string{endpoint})
}

func (o *Options) v3(endpoints []string) (*clientv3.Client, error) {
	cfg, err := o.V3Config(endpoints)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, o.Explain(strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// V3Config is the client configuration V3 and V3Single connect with, for libraries that make their
// own client (etcdutl's snapshot save).
func (o *Options) V3Config(endpoints []string) (clientv3.Config, error) {
	tlsCfg, err := o.TLSConfig()
	if err != nil {
		return clientv3.Config{}, err
	}
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: o.DialTimeout,
		TLS:         tlsCfg,
		Username:    o.User,
		Password:    o.Password,
		// The gRPC default of 4 MiB is below what a 1.5 MiB-value txn batch or a large range needs.
		MaxCallRecvMsgSize: 64 << 20,
		MaxCallSendMsgSize: 64 << 20,
		// Module stdout must hold only the result JSON; the client's zap logs would corrupt it.
		Logger:           zap.NewNop(),
		AutoSyncInterval: 0,
		// Without a blocking dial the client connects lazily and an unreachable endpoint or a TLS
		// mismatch surfaces only as "context deadline exceeded" after command_timeout; blocking
		// with the last connection error makes New fail within dial_timeout with the real cause
		// (connection refused, unknown authority, ...), which Explain can turn into a fix.
		DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()},
	}, nil
}

// Refused returns the error of a TCP connection to endpoint refused at once: nothing listens there
// (a stopped member). It returns nil when the connection is made, or fails any other way, within
// a second: then only the client can tell. A client's blocking dial retries a refused connection
// until dial_timeout before it says so; a caller that expects stopped members asks this first.
func (o *Options) Refused(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Port() == "" {
		return nil
	}
	timeout := time.Second
	if o.DialTimeout > 0 {
		timeout = min(o.DialTimeout, timeout)
	}
	c, err := net.DialTimeout("tcp", u.Host, timeout)
	if err == nil {
		c.Close()
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return nil
}

// Ctx returns a context bounded by command_timeout.
func (o *Options) Ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, o.CommandTimeout)
}

// V2 returns a v2 API client (etcd 3.4/3.5 with --enable-v2). It does not sync the member list, so
// it talks only to the endpoints given.
func (o *Options) V2() (clientv2.Client, error) {
	tr, err := o.V2Transport()
	if err != nil {
		return nil, err
	}
	cli, err := clientv2.New(clientv2.Config{
		Endpoints:               o.Endpoints,
		Transport:               tr,
		Username:                o.User,
		Password:                o.Password,
		HeaderTimeoutPerRequest: o.CommandTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("v2 client: %w", err)
	}
	return cli, nil
}

// V2Transport is the HTTP transport (TLS, timeouts) of V2's client, for code that speaks the v2
// HTTP API directly (e.g. a faster decoder of large listings).
func (o *Options) V2Transport() (*http.Transport, error) {
	tlsCfg, err := o.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: o.DialTimeout,
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: 64,
	}, nil
}

// ReadProbe does one linearizable read through the endpoints: it succeeds only when a member there
// can reach a quorum. Tests and the lab poll it to know a cluster serves.
func (o *Options) ReadProbe(timeout time.Duration) error {
	cli, err := o.V3()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = cli.Get(ctx, "etcdops-read-probe")
	return err
}
