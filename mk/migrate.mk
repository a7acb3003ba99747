# v2→v3 migration (issue 6): playbooks/migrate_v2_to_v3.yml, playbooks/rollback_migration.yml.
# Its end-to-end tests (tests/e2e/migrate_*_test.go) run in `make e2e`; the outage figures are a benchmark:
#   make bench-migrate [MIGRATE_BENCH='BenchmarkMigrationOutage/offline/20k/ssh']  (…/pipelining: pipelining on)
MIGRATE_BENCH ?= BenchmarkMigrationOutage

.PHONY: bench-migrate
bench-migrate: deps install labctl
	$(BENCH_RECORD) $(GO) test -run '^$$' -bench '$(MIGRATE_BENCH)' -benchtime 1x -timeout 180m ./tests/e2e/ 2>&1 | tee $(BENCH_DIR)/$@.txt

bench: bench-migrate

# The migration's packages against Debian's etcd 3.4 as processes (`make unit` covers embedded 3.5):
# the backup's WAL-lock check and force-new-cluster behave per server version; the live copy on 3.2 too
# (3.2-3.4 advance the db's consistent index only when they commit it, 3.5 on every entry).
.PHONY: test-migrate-versions
test-migrate-versions: etcd-old
	ETCDTEST_BIN=/usr/bin/etcd $(GO) test -count=1 -timeout 10m ./pkg/backup/ ./pkg/forcenew/
	ETCDTEST_BIN=$(ETCD32_BIN) $(GO) test -count=1 -timeout 10m -run TestLiveCopy ./pkg/backup/

EXTRA_TEST_TARGETS += test-migrate-versions
