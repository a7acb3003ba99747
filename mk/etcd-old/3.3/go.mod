module etcd33build

go 1.24

// Versions = etcd v3.3.27's glide.yaml/glide.lock, as proxy tags/pseudo-versions,
// except json-iterator/reflect2 (see below).
require (
	github.com/beorn7/perks v1.0.0
	github.com/coreos/bbolt v1.3.3
	github.com/coreos/etcd v3.3.27+incompatible
	github.com/coreos/go-semver v0.2.0
	github.com/coreos/go-systemd v0.0.0-20190620071333-e64a0ec8b42a
	github.com/coreos/pkg v0.0.0-20180108230652-97fdf19511ea
	github.com/cpuguy83/go-md2man v1.0.10
	github.com/dgrijalva/jwt-go v3.0.0+incompatible
	github.com/dustin/go-humanize v1.0.0
	github.com/gogo/protobuf v1.2.1
	github.com/golang/groupcache v0.0.0-20190702054246-869f871628b6
	github.com/golang/protobuf v1.3.2
	github.com/google/btree v1.0.0
	github.com/google/uuid v1.0.0
	github.com/gorilla/websocket v1.4.0
	github.com/grpc-ecosystem/go-grpc-middleware v1.0.0
	github.com/grpc-ecosystem/go-grpc-prometheus v0.0.0-20170826090648-0dafe0d496ea
	github.com/grpc-ecosystem/grpc-gateway v1.3.1
	github.com/inconshreveable/mousetrap v1.0.0
	github.com/jonboulle/clockwork v0.1.0
	// glide: json-iterator v1.1.7 + reflect2 v1.0.1; reflect2 < v1.0.2 breaks on Go >= 1.18.
	github.com/json-iterator/go v1.1.12
	github.com/matttproud/golang_protobuf_extensions v1.0.1
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd
	github.com/modern-go/reflect2 v1.0.2
	github.com/prometheus/client_golang v0.9.0-pre1.0.20171005112915-5cec1d0429b0
	github.com/prometheus/client_model v0.0.0-20170216185247-6f3806018612
	github.com/prometheus/common v0.0.0-20171104095907-e3fb1a1acd76
	github.com/prometheus/procfs v0.0.0-20171017214025-a6e9df898b13
	github.com/russross/blackfriday v1.5.2
	github.com/sirupsen/logrus v1.0.3
	github.com/soheilhy/cmux v0.1.4
	github.com/spf13/cobra v0.0.0-20151124153217-1c44ec8d3f15
	github.com/spf13/pflag v1.0.0
	github.com/tmc/grpc-websocket-proxy v0.0.0-20170815181823-89b8d40f7ca8
	github.com/xiang90/probing v0.0.0-20160813154853-07dd2e8dfe18
	go.uber.org/atomic v1.4.0
	go.uber.org/multierr v1.1.0
	go.uber.org/zap v1.10.0
	golang.org/x/crypto v0.0.0-20190308221718-c2843e01d9a2
	golang.org/x/net v0.0.0-20190813141303-74dc4d7220e7
	golang.org/x/sys v0.0.0-20190813064441-fde4db37ae7a
	golang.org/x/text v0.3.2
	golang.org/x/time v0.0.0-20170420181420-c06e80d9300e
	// glide: 09f6ed296fc6; grpc v1.23.0 requires this one (MVS would pick it anyway).
	google.golang.org/genproto v0.0.0-20180817151627-c66870c02cf8
	google.golang.org/grpc v1.23.0
	gopkg.in/yaml.v2 v2.2.2
	sigs.k8s.io/yaml v1.1.0
)

require (
	github.com/bgentry/speakeasy v0.1.0
	github.com/mattn/go-runewidth v0.0.9
	github.com/olekukonko/tablewriter v0.0.5
	github.com/urfave/cli v1.20.0
	gopkg.in/cheggaaa/pb.v1 v1.0.28
)
