# Recovery (issue 15, docs/recovery.md): recover_member.yml, restore_from_snapshot.yml, force_new_cluster.yml.
# Their end-to-end tests run in `make e2e` (etcd 3.4) and `make soak` (3.2 and 3.6); the time to a healthy
# cluster is a benchmark, as ratios to the time etcd itself needs to start from the same data (the floor):
#   make bench-recovery [RECOVERY_BENCH='BenchmarkRecovery/20k']
RECOVERY_BENCH ?= BenchmarkRecovery

.PHONY: bench-recovery
bench-recovery: deps install labctl
	$(BENCH_RECORD) $(GO) test -run '^$$' -bench '$(RECOVERY_BENCH)' -benchtime 1x -timeout 120m ./tests/e2e/ 2>&1 | tee $(BENCH_DIR)/$@.txt

bench: bench-recovery
