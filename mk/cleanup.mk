# Clean-up after a failed migration (issue 14, docs/cleanup.md): its end-to-end tests run in `make e2e`;
# the outage at 20k and 100k keys is a benchmark, one fresh lab per size:
#   make bench-cleanup [CLEANUP_BENCH='BenchmarkCleanupOutage/20k']
CLEANUP_BENCH ?= BenchmarkCleanupOutage

.PHONY: bench-cleanup
bench-cleanup: deps install labctl
	$(BENCH_RECORD) $(GO) test -run '^$$' -bench '$(CLEANUP_BENCH)' -benchtime 1x -timeout 120m ./tests/e2e/ 2>&1 | tee $(BENCH_DIR)/$@.txt

bench: bench-cleanup
