# etcdops.etcd — build, install and test the collection.
# Area-specific targets live in mk/*.mk (lab, e2e, bench, …) and hook into the ones below.
SHELL      := /bin/bash
GO         ?= go
GOOS       ?= linux
GOARCH     ?= amd64
MODULES    := $(notdir $(wildcard modules/*))
# Binaries are built per platform under build/bin/<os>_<arch>/; the platform the collection ships is
# copied to plugins/modules/<module> (Ansible finds a module by its file name, so names never change).
BINDIR     := build/bin/$(GOOS)_$(GOARCH)
COLLROOT   := $(CURDIR)/build/collections
COLLLINK   := $(COLLROOT)/ansible_collections/etcdops/etcd
export ANSIBLE_COLLECTIONS_PATH := $(COLLROOT):$(HOME)/.ansible/collections:/usr/share/ansible/collections

.DEFAULT_GOAL := all

# Area targets (lab, e2e, demo, bench, etcd 3.6, …); included before the rules below so their
# EXTRA_TEST_TARGETS additions reach `test`.
-include mk/*.mk

.PHONY: all build install deps lint unit modtest test demo bench clean collection
all: build

build:
	@mkdir -p $(BINDIR) plugins/modules
	@for m in $(MODULES); do \
	  CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags='-s -w' -o $(BINDIR)/$$m ./modules/$$m || exit 1; \
	  install -m 0755 $(BINDIR)/$$m plugins/modules/$$m; \
	done
	@echo "built $(words $(MODULES)) modules for $(GOOS)/$(GOARCH) into plugins/modules/"

# The checkout itself is the collection: link it where Ansible looks for etcdops.etcd.
install: build
	@mkdir -p $(dir $(COLLLINK)) $(HOME)/.ansible/collections/ansible_collections/etcdops
	@ln -sfn $(CURDIR) $(COLLLINK)
	@ln -sfn $(CURDIR) $(HOME)/.ansible/collections/ansible_collections/etcdops/etcd
	@echo "etcdops.etcd installed from $(CURDIR) (linked into $(COLLROOT) and ~/.ansible/collections)"

# A release tarball: binaries and docs, no Go sources (see build_ignore in galaxy.yml).
collection: build
	@mkdir -p build/dist
	ansible-galaxy collection build --force --output-path build/dist .

# Debian packages every layer needs; idempotent and quick when already present.
DEB_PACKAGES := ansible-core ansible ansible-lint etcd-server etcd-client debootstrap systemd-container \
                iptables openssh-client rsync
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(GO) mod download

GOFMT      := $(shell $(GO) env GOROOT)/bin/gofmt

lint: build
	@unformatted=$$(find . -name '*.go' -not -path './build/*' -not -path './.git/*' | xargs $(GOFMT) -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	ansible-lint --offline -q playbooks roles

unit:
	$(GO) test -count=1 -timeout 20m ./pkg/... ./internal/...

modtest: install
	$(GO) test -count=1 -timeout 20m ./tests/modules/...

test: deps install lint unit modtest $(EXTRA_TEST_TARGETS)
	@echo "make test: all layers passed"

clean:
	rm -rf build
	find plugins/modules -type f ! -name '*.yml' -delete

