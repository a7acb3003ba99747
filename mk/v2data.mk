# v2 data tools (issue 5): etcd_v2_copy and etcd_ttl_leases.
#
# make bench-v2data (part of make bench): both against the algorithms they replace and the server's
# write ceiling, in one run (Debian's etcd 3.4 by default). BENCH_KEYS sizes the dataset (20000),
# BENCH_ROUNDS the rounds whose median ratios are printed (5: on two shared cores single rounds of the
# copy ranged over ±10 %).
BENCH_ETCD ?= /usr/bin/etcd
.PHONY: bench-v2data test-v2data-versions
bench-v2data:
	$(BENCH_RECORD) ETCDTEST_BIN=$(BENCH_ETCD) $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/ 2>&1 | tee $(BENCH_DIR)/$@.txt
bench: bench-v2data

# The copy, the offline migration (pkg/v2migrate, compared with that version's etcdctl migrate) and the lease attach against Debian's etcd 3.4 and the built 3.2 and 3.3 (OpenShift 3.x's),
# as processes (`make unit` covers embedded 3.5): v2 answers, WAL and snapshot formats, lease
# features (ignore_value came with 3.3) and the status fields (the applied index came with 3.4) are
# per server version.
test-v2data-versions: etcd-old
	ETCDTEST_BIN=/usr/bin/etcd $(GO) test -count=1 -timeout 10m ./pkg/v2data/ ./pkg/v2disk/ ./pkg/v2migrate/ ./pkg/leases/
	ETCDTEST_BIN=$(ETCD32_BIN) $(GO) test -count=1 -timeout 10m ./pkg/v2data/ ./pkg/v2disk/ ./pkg/v2migrate/ ./pkg/leases/
	ETCDTEST_BIN=$(ETCD33_BIN) $(GO) test -count=1 -timeout 10m ./pkg/v2data/ ./pkg/v2disk/ ./pkg/v2migrate/ ./pkg/leases/

EXTRA_TEST_TARGETS += test-v2data-versions
