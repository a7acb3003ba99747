# etcd 3.6 built from the Go module proxy, for version coverage of the membership code.
# A scratch module under build/ pins the release: `go install pkg@version` refuses etcd's modules
# because their go.mod files carry replace directives. The binaries are cached: the target does
# nothing once build/etcd-3.6/etcd exists for the pinned version.
ETCD36_VERSION ?= v3.6.16
ETCD36_DIR     := build/etcd-3.6
ETCD36_BIN     := $(CURDIR)/$(ETCD36_DIR)/etcd
ETCD36_STAMP   := $(ETCD36_DIR)/.version-$(ETCD36_VERSION)

.PHONY: etcd36 test-member-versions
etcd36: $(ETCD36_STAMP)

$(ETCD36_STAMP):
	@mkdir -p $(ETCD36_DIR)/src
	@cd $(ETCD36_DIR)/src && rm -f go.mod go.sum && printf 'module etcd36build\n\ngo 1.24\n' > go.mod && \
	  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/etcdctl/v3"\n\t_ "go.etcd.io/etcd/etcdutl/v3"\n\t_ "go.etcd.io/etcd/server/v3"\n)\n' > tools.go && \
	  GOFLAGS=-mod=mod $(GO) get go.etcd.io/etcd/server/v3@$(ETCD36_VERSION) \
	    go.etcd.io/etcd/etcdctl/v3@$(ETCD36_VERSION) go.etcd.io/etcd/etcdutl/v3@$(ETCD36_VERSION) && \
	  CGO_ENABLED=0 $(GO) build -trimpath -o ../etcd go.etcd.io/etcd/server/v3 && \
	  CGO_ENABLED=0 $(GO) build -trimpath -o ../etcdctl go.etcd.io/etcd/etcdctl/v3 && \
	  CGO_ENABLED=0 $(GO) build -trimpath -o ../etcdutl go.etcd.io/etcd/etcdutl/v3
	@rm -f $(ETCD36_DIR)/.version-*
	@touch $@
	@$(ETCD36_DIR)/etcd --version | head -1

# pkg/member against real etcd processes: Debian's 3.4, the built 3.6 and 3.2 (OpenShift 3.x's; no
# learners: those tests skip) (`make unit` covers the embedded 3.5).
test-member-versions: etcd36 etcd-old
	ETCDTEST_BIN=/usr/bin/etcd $(GO) test -count=1 -timeout 15m ./pkg/member/
	ETCDTEST_BIN=$(ETCD36_BIN) $(GO) test -count=1 -timeout 15m ./pkg/member/
	ETCDTEST_BIN=$(ETCD32_BIN) $(GO) test -count=1 -timeout 15m ./pkg/member/

EXTRA_TEST_TARGETS += test-member-versions
