# v2→v3 migration (issue 6): playbooks/migrate_v2_to_v3.yml, playbooks/rollback_migration.yml.
# Its end-to-end tests (tests/e2e/migrate_*_test.go) run in `make e2e`; the outage figures are a benchmark:
#   make bench-migrate [MIGRATE_BENCH='BenchmarkMigrationOutage/offline/20k']
MIGRATE_BENCH ?= BenchmarkMigrationOutage

.PHONY: bench-migrate
bench-migrate: deps install labctl
	$(GO) test -run '^$$' -bench '$(MIGRATE_BENCH)' -benchtime 1x -timeout 90m ./tests/e2e/

bench: bench-migrate
