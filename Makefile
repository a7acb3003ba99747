# etcdops.etcd — build, install and test the collection.
# Area-specific targets live in mk/*.mk (lab, e2e, bench, …) and hook into the ones below.
SHELL      := /bin/bash
GO         ?= go
GOOS       ?= linux
GOARCH     ?= amd64
MODULES    := $(notdir $(wildcard modules/*))
COLLROOT   := $(CURDIR)/build/collections
# Where `make install` installs etcdops.etcd: by default the checkout's own build/collections (read by
# its ansible.cfg and by ANSIBLE_COLLECTIONS_PATH below); COLLECTIONS_PATH=~/.ansible/collections for
# the user's default path.
COLLECTIONS_PATH ?= $(COLLROOT)
VERSION    := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL    := build/dist/etcdops-etcd-$(VERSION).tar.gz
export ANSIBLE_COLLECTIONS_PATH := $(COLLROOT):$(HOME)/.ansible/collections:/usr/share/ansible/collections

.DEFAULT_GOAL := all

# Each bench-* target keeps its last output in $(BENCH_DIR)/<target>.txt (its recipe starts with
# $(BENCH_RECORD) and ends in | tee $(BENCH_DIR)/$@.txt); make bench ends with one table of them all.
BENCH_DIR    := build/bench
BENCH_RECORD  = set -o pipefail; mkdir -p $(BENCH_DIR);

# Area targets (lab, e2e, demo, bench, etcd 3.6, …); included before the rules below so their
# EXTRA_TEST_TARGETS additions reach `test`.
-include mk/*.mk

.PHONY: all build install install-locked deps lint unit modtest test demo bench bench-table clean collection
all: build

# All modules are one multi-call executable (cmd/etcdops: one transfer per host instead of one binary per
# module, see docs/speed.md), built as bin/<os>_<arch>/etcdops for every arch in BUILD_ARCHES (each host
# runs its own architecture's, chosen by the action plugin). Beside each executable, etcdops.digest records
# its sha256 and size, and etcdops.xz packs it: the tarball ships the .xz and the digest, not
# the executable (Galaxy's 20 MB limit, docs/speed.md); the action plugin unpacks the architectures its
# hosts use into a controller cache and checks them against the digest. plugins/modules/<module> is a
# small regular file (Ansible finds a module, and ansible-doc its NAME.yml, by that file's name); the
# action plugin runs every module. Architectures no longer built are removed from bin/ so that a stale
# executable never ships.
BUILD_ARCHES ?= amd64 arm64 ppc64le s390x
# grpcnotrace: grpc links golang.org/x/net/trace (and through it html/template) only for its /debug/requests
# page, which no module serves; without it each executable is 0.68 MB (3.3 %) smaller (docs/speed.md).
GO_TAGS    := grpcnotrace
ARCHES     := $(sort $(GOARCH) $(BUILD_ARCHES))
# xz options per architecture (measured in docs/speed.md): x86's BCJ filter, which every liblzma decodes;
# lc=2,lp=2 for the fixed-width instruction sets (arm64's BCJ filter needs liblzma 5.4 on the controller).
XZ_amd64   := --x86 --lzma2=preset=9e
XZ_OTHER   := --lzma2=preset=9e,lc=2,lp=2
build:
	@mkdir -p plugins/modules
	@for d in bin/$(GOOS)_*; do \
	  case " $(ARCHES) " in *" $${d#bin/$(GOOS)_} "*) ;; *) [ ! -d "$$d" ] || rm -r "$$d";; esac; \
	done
	@# build may run while another build runs (only make install takes a lock): each run writes its own
	@# temporary digest and .xz under build/, and a stub only when it changes (creating even a temporary
	@# file in bin/ or plugins/modules/ touches the directory, and the tarball looks stale: collection).
	@set -e; for a in $(ARCHES); do \
	  out=build/bin/$(GOOS)_$$a/etcdops exe=bin/$(GOOS)_$$a/etcdops; mkdir -p $$(dirname $$out) $$(dirname $$exe); \
	  CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$$a $(GO) build -trimpath -ldflags='-s -w' -tags '$(GO_TAGS)' -o $$out ./cmd/etcdops; \
	  install -C -m 0755 $$out $$exe; \
	  printf '{"sha256": "%s", "size": %s}\n' "$$(sha256sum $$exe | cut -d' ' -f1)" "$$(stat -c %s $$exe)" > $$out.digest.$$$$; \
	  if cmp -s $$out.digest.$$$$ $$exe.digest; then rm $$out.digest.$$$$; else mv $$out.digest.$$$$ $$exe.digest; fi; \
	  if [ ! -f $$exe.xz ] || [ $$exe -nt $$exe.xz ]; then \
	    opts='$(XZ_OTHER)'; [ $$a != amd64 ] || opts='$(XZ_amd64)'; \
	    xz -T1 $$opts -c $$exe > $$out.xz.$$$$ && mv $$out.xz.$$$$ $$exe.xz; \
	  fi; \
	done
	@for m in $(MODULES); do \
	  f=plugins/modules/$$m; \
	  if [ -L $$f ] || ! printf '$(MODULE_STUB)\n' | cmp -s - $$f; then \
	    printf '$(MODULE_STUB)\n' > $$f.tmp.$$$$ && mv -T $$f.tmp.$$$$ $$f; fi; \
	done
	@echo "built $(words $(MODULES)) modules as bin/$(GOOS)_<arch>/etcdops(.xz) for $(ARCHES)"
# What plugins/modules/<module> holds: run by hand (or without the action plugin), it says what runs it.
MODULE_STUB := \#!/bin/sh\n\# An etcdops.etcd module: its docs are NAME.yml here; the action plugin etcd_module runs it with\n\# bin/linux_<arch>/etcdops.xz for the host (meta/runtime.yml, docs/speed.md).\necho "{\\"failed\\": true, \\"msg\\": \\"run etcdops.etcd modules through Ansible (action plugin etcd_module)\\"}"

# Installed the way users install it: the release tarball through ansible-galaxy, replacing an earlier
# install of etcdops.etcd in COLLECTIONS_PATH (and only there). A link that an older `make install` left
# there is removed when it is the checkout's own build/collections, and refused anywhere else.
# One make install at a time (flock): two at once would both rebuild the tarball, one while the other's
# ansible-galaxy reads it.
install:
	@mkdir -p build && flock build/.install.lock $(MAKE) --no-print-directory -s install-locked
install-locked: collection
	@dest=$(COLLECTIONS_PATH)/ansible_collections/etcdops/etcd; \
	if [ -L "$$dest" ]; then \
	  if [ "$(abspath $(COLLECTIONS_PATH))" = "$(COLLROOT)" ]; then rm "$$dest"; \
	  else echo "$$dest is a link to $$(readlink "$$dest") (an older make install); remove it and run make install again" >&2; exit 1; fi; \
	fi
	@# Tests and playbooks may run from the installed copy while another make install waits for the lock
	@# (go test runs packages, and make test its lanes, in parallel): an unchanged tarball is not installed
	@# again, and a new one is installed beside the old copy and swapped in by rename, never deleted under
	@# a running playbook.
	@dest=$(COLLECTIONS_PATH)/ansible_collections/etcdops/etcd; stamp=$$dest.tarball-sha256; \
	sum=$$(sha256sum $(TARBALL) | cut -d' ' -f1); \
	if [ -d "$$dest" ] && [ "$$(cat "$$stamp" 2>/dev/null)" = "$$sum" ]; then \
	  echo "etcdops.etcd $(VERSION) from $(TARBALL) is installed in $(COLLECTIONS_PATH)"; exit 0; fi; \
	mkdir -p $(COLLECTIONS_PATH) && tmp=$$(mktemp -d $(COLLECTIONS_PATH)/.install.XXXXXX) && \
	ANSIBLE_COLLECTIONS_PATH="$$tmp" ansible-galaxy collection install --force $(TARBALL) -p "$$tmp" >/dev/null && \
	test -f "$$tmp/ansible_collections/etcdops/etcd/plugins/modules/etcd_member" && \
	mkdir -p "$$(dirname "$$dest")" && \
	{ [ ! -e "$$dest" ] || mv "$$dest" "$$tmp/replaced"; } && \
	mv "$$tmp/ansible_collections/etcdops/etcd" "$$dest" && echo "$$sum" > "$$stamp" && rm -rf "$$tmp" && \
	echo "etcdops.etcd $(VERSION) installed into $(COLLECTIONS_PATH) from $(TARBALL)"

# A release tarball: binaries and docs, no Go sources (see build_ignore in galaxy.yml). Building it takes
# ~16 s (ansible-galaxy gzips ~130 MB of binaries at level 9), so it is rebuilt only when something in
# the checkout is newer than it; the directories pruned here are build_ignore'd and reach the tarball
# only through the binaries (which `build` leaves untouched when unchanged: install -C).
STALE_FIND := find . \( -path ./build -o -path ./.lab -o -path ./.git -o -path ./tests -o -path ./pkg \
              -o -path ./internal -o -path ./cmd -o -path ./modules -o -path ./lab -o -path ./mk -o -path ./bench \) -prune \
              -o -newer $(TARBALL) -print -quit
collection: build
	@mkdir -p build/dist
	@if [ -f $(TARBALL) ] && [ -z "$$($(STALE_FIND))" ]; then \
	  echo "$(TARBALL) is up to date"; \
	else \
	  ansible-galaxy collection build --force --output-path build/dist . >/dev/null && echo "built $(TARBALL)"; \
	fi
	@test -f $(TARBALL)

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

# Besides vet and ansible-lint: gofmt and a tidy go.mod; every module's parameters (its binary's
# --argspec, from the struct tags) must agree with its sidecar doc as ansible-doc renders it
# (tests/modules/argspec_test.go), and the changelog fragments must be valid and name every module and
# playbook (changelog_test.go).
lint: build
	@unformatted=$$(find . -name '*.go' -not -path './build/*' -not -path './.git/*' | xargs $(GOFMT) -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 -run '^(TestArgSpecMatchesDocs|TestCompareOptionsReportsEveryMismatch|TestChangelogFragments)$$' ./tests/modules/
	@# ansible-lint resolves etcdops.etcd.* roles through the collections path: give it this checkout
	@# (linked under build/lint), not the copy the last make install left in build/collections.
	@rm -rf build/lint && mkdir -p build/lint/ansible_collections/etcdops && ln -s $(CURDIR) build/lint/ansible_collections/etcdops/etcd
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/build/lint ansible-lint --offline -q playbooks roles

unit:
	$(GO) test -count=1 -timeout 20m ./pkg/... ./internal/...

modtest: install
	$(GO) test -count=1 -timeout 20m ./tests/modules/...

# Lint, then unit, modtest and the e2e build at once (logs: build/test-quick/), then four lanes at once
# (mk/lanes.sh; logs: build/test-lanes/): the three e2e shards, each followed by some of the other layers
# (EXTRA_TEST_TARGETS, from mk/*.mk), and the hosted tests (one k8s lab per machine) in the fourth with
# whatever layer is not named below. The lanes keep both cores busy only while the shards run: on
# 2026-12-07 the fourth lane held all the other layers and ran 920 s alone after the shards (2204 s
# against 1246–1318 s), so those layers now follow the shards, balanced by their times then (in s):
# member versions 355, v2data versions 330, the rest 184; the hosted tests 1410. modtest stays before
# the lanes: beside the three shards it ran past its 20-minute timeout.
TEST_LANE_A := $(filter test-v2data-versions,$(EXTRA_TEST_TARGETS))
TEST_LANE_B := $(filter test-facts-versions test-migrate-versions test-snapshot-versions test-lab test-speed,$(EXTRA_TEST_TARGETS))
TEST_LANE_C := $(filter test-member-versions,$(EXTRA_TEST_TARGETS))
TEST_LANE_D := $(filter-out $(TEST_LANE_A) $(TEST_LANE_B) $(TEST_LANE_C),$(EXTRA_TEST_TARGETS))
test: deps install lint
	@MAKE=$(MAKE) mk/lanes.sh build/test-quick unit modtest e2e-build
	@MAKE=$(MAKE) mk/lanes.sh build/test-lanes "e2e-shard-a $(TEST_LANE_A)" "e2e-shard-b $(TEST_LANE_B)" \
	  "e2e-shard-c $(TEST_LANE_C)" "$(TEST_LANE_D)"
	@echo "make test: all layers passed"

# The bench-* targets (mk/*.mk add them as prerequisites) run first; then one table of what each last
# measured, and issue 18's goals against their ceilings. bench-table prints it alone.
BENCH_TABLE = $(GO) run ./internal/benchtable -dir $(BENCH_DIR)
bench:
	@$(BENCH_TABLE)
bench-table:
	@$(BENCH_TABLE)

clean:
	rm -rf build
	rm -f $(addprefix plugins/modules/,$(MODULES)); rm -rf bin

