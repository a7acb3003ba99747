# etcd_snapshot's restore against real etcd processes: a three-member cluster of each version saved,
# every member restored from the one snapshot with a new token, started together and serving the
# keys - Debian's 3.4 and the built 3.6 (`make unit` covers the embedded 3.5).
.PHONY: test-snapshot-versions
test-snapshot-versions: etcd36
	ETCDTEST_BIN=/usr/bin/etcd $(GO) test -count=1 -timeout 10m -run TestRestoreThreeMembers ./pkg/snapshot/
	ETCDTEST_BIN=$(ETCD36_BIN) $(GO) test -count=1 -timeout 10m -run TestRestoreThreeMembers ./pkg/snapshot/

EXTRA_TEST_TARGETS += test-snapshot-versions
