# etcd_cluster_info / etcd_convergence_wait against real etcd processes of the versions the
# collection meets: Debian's 3.4 (OpenShift-era v2 API on) and the built 3.6 (no v2 API).
# `make unit` covers the embedded 3.5.
.PHONY: test-facts-versions
test-facts-versions: etcd36
	ETCDTEST_BIN=/usr/bin/etcd $(GO) test -count=1 -timeout 10m ./pkg/clusterinfo/ ./pkg/convergence/
	ETCDTEST_BIN=$(ETCD36_BIN) $(GO) test -count=1 -timeout 10m ./pkg/clusterinfo/ ./pkg/convergence/

EXTRA_TEST_TARGETS += test-facts-versions

# The preflight's cost: one etcd_cluster_info gather on a 3-member TLS cluster of BENCH_FACTS_KEYS keys.
.PHONY: bench-facts
bench-facts:
	$(BENCH_RECORD) ETCDTEST_BIN=$(BENCH_ETCD) $(GO) test -count=1 -run '^$$' -bench Gather -benchtime 5x ./pkg/clusterinfo/ 2>&1 | tee $(BENCH_DIR)/$@.txt
bench: bench-facts
