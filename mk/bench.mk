# make bench-v2data (part of make bench): etcd_v2_copy and etcd_ttl_leases against the algorithms they
# replace and the server's write ceiling, in one run (Debian's etcd 3.4 by default).
# BENCH_KEYS sizes the dataset (6000), BENCH_ROUNDS the rounds whose median ratios are printed (3).
BENCH_ETCD ?= /usr/bin/etcd
.PHONY: bench-v2data
bench-v2data:
	ETCDTEST_BIN=$(BENCH_ETCD) $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/
bench: bench-v2data
