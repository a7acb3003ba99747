# etcd 3.2 and 3.3 built from the Go module proxy: the servers OpenShift 3.x clusters actually run
# (3.2.x on 3.6-3.11), for the v2 data tools' version tests. They predate Go modules: the pinned
# dependencies (each release's glide.lock, with the few bumps Go 1.26 needs) are in
# mk/etcd-old/<version>/go.mod and go.sum. etcd 3.2's v2 client code requires ugorji/go at codec
# version 5, whose init builds a base64 alphabet with a repeated '_', which Go ≥ 1.22 rejects (a
# panic at start): a local copy with the last '_' turned into '.' is used (that alphabet only names
# variables in generated code). etcdctl is built too: the lab installs both (LAB_ETCD=3.2).
# Cached: nothing happens once build/etcd-<version>/etcd exists.
ETCD32_BIN := $(CURDIR)/build/etcd-3.2/etcd
ETCD33_BIN := $(CURDIR)/build/etcd-3.3/etcd
UGORJI_V5  := github.com/ugorji/go@v0.0.0-20170107133203-ded73eae5db7

.PHONY: etcd-old
etcd-old: build/etcd-3.2/etcd build/etcd-3.3/etcd

build/etcd-%/etcd: mk/etcd-old/%/go.mod mk/etcd-old/%/go.sum
	@rm -rf build/etcd-$*/src && mkdir -p build/etcd-$*/src
	@cp mk/etcd-old/$*/go.mod mk/etcd-old/$*/go.sum build/etcd-$*/src/
	@printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coreos/etcd"\n' > build/etcd-$*/src/tools.go
	@if grep -q ugorji-go build/etcd-$*/src/go.mod; then \
	  u=$$(cd / && GOFLAGS=-mod=mod $(GO) mod download -json $(UGORJI_V5) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  cp -r "$$u" build/etcd-$*/src/ugorji-go && chmod -R u+w build/etcd-$*/src/ugorji-go && \
	  printf 'module github.com/ugorji/go\n' > build/etcd-$*/src/ugorji-go/go.mod && \
	  sed -i 's/0123456789__")/0123456789_.")/' build/etcd-$*/src/ugorji-go/codec/gen.go && \
	  grep -q '0123456789_.")' build/etcd-$*/src/ugorji-go/codec/gen.go; fi
	cd build/etcd-$*/src && GOFLAGS=-mod=mod CGO_ENABLED=0 $(GO) build -trimpath -o ../etcdctl github.com/coreos/etcd/etcdctl
	cd build/etcd-$*/src && GOFLAGS=-mod=mod CGO_ENABLED=0 $(GO) build -trimpath -o ../etcd github.com/coreos/etcd
	@$@ --version | head -1
