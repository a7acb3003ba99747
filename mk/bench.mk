# make bench: etcd_v2_copy and etcd_ttl_leases against the algorithms they replace and the server's
# write ceiling, on one server in one run (Debian's etcd 3.4 by default). BENCH_KEYS sizes the dataset.
BENCH_ETCD ?= /usr/bin/etcd
bench:
	ETCDTEST_BIN=$(BENCH_ETCD) $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/
