# Long end-to-end tests kept out of `make test` (60 minutes on 2 cores): version variants and long
# interruption scenarios, tests/e2e/*_test.go and tests/hosted/*_test.go named TestSoak*, which skip unless
# ETCDOPS_SOAK=1 (the hosted ones also without `make k8s-binaries`). One package after the other (-p 1):
# the host labs and the k8s lab would share two cores.
#   make soak [SOAK_RUN='TestSoakRecoveryVersions/3.6'] [SOAK_TIMEOUT=2h]
# The fault matrix (TestSoakFaultMatrix*, docs/development.md) alone takes about a day: the default timeout
# covers it; SOAK_RUN='TestSoakFaultMatrixMigrateOffline/(uninterrupted|^0[0-4])' runs a slice of its boundaries.
SOAK_RUN ?= ^TestSoak
SOAK_TIMEOUT ?= 30h

.PHONY: soak
soak: deps install labctl etcd36 etcd-old
	ETCDOPS_SOAK=1 $(GO) test -p 1 -count=1 -v -run '$(SOAK_RUN)' -timeout $(SOAK_TIMEOUT) ./tests/e2e/ ./tests/hosted/
