# Moving a cluster onto new nodes (issue 16, docs/replace.md): its end-to-end tests run in `make e2e`
# and `make soak`; the move at 20k and 100k keys is a benchmark, one fresh lab per size:
#   make bench-replace [REPLACE_BENCH='BenchmarkReplaceNodes/20k']
REPLACE_BENCH ?= BenchmarkReplaceNodes

.PHONY: bench-replace
bench-replace: deps install labctl
	$(BENCH_RECORD) $(GO) test -run '^$$' -bench '$(REPLACE_BENCH)' -benchtime 1x -timeout 180m ./tests/e2e/ 2>&1 | tee $(BENCH_DIR)/$@.txt

bench: bench-replace
