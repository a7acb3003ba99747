# The multi-host lab (lab/, docs/lab.md): Debian hosts booted with systemd-nspawn, each with sshd and a
# TLS etcd on its own 127.0.N.M, an Ansible inventory, OpenShift-shaped v2 data.
#   make lab-up [LAB_HOSTS=3] [LAB_ETCD=3.4|3.6|3.2|3.3] [LAB_SEED_V2=2000] [LAB_GROUPS="new_etcd=3"]
#   make lab-down          make lab-status
#   make e2e               playbook tests against a lab (go-ansible runner), part of `make test`
#   make demo [KEEP=1] [DEMO_PLAYBOOK=playbooks/…]
LAB_NAME      ?= lab
LAB_HOSTS     ?= 3
LAB_ETCD      ?= 3.4
LAB_SEED_V2   ?= $(if $(filter 3.6,$(LAB_ETCD)),0,2000)
LAB_GROUPS    ?=
LABCTL        := build/bin/labctl
# The demo's main job: the v2→v3 migration (docs/migration.md) on a freshly seeded lab.
DEMO_PLAYBOOK ?= playbooks/migrate_v2_to_v3.yml
DEMO_KEYS     ?= 2000
KEEP          ?= 0

.PHONY: labctl lab-up lab-down lab-status e2e demo
labctl:
	@mkdir -p $(dir $(LABCTL))
	@$(GO) build -o $(LABCTL) ./lab/cmd/labctl

lab-up: deps labctl $(if $(filter 3.6,$(LAB_ETCD)),etcd36) $(if $(filter 3.2 3.3,$(LAB_ETCD)),etcd-old)
	$(LABCTL) up -name $(LAB_NAME) -hosts $(LAB_HOSTS) -etcd $(LAB_ETCD) -seed-v2 $(LAB_SEED_V2) \
	  $(foreach g,$(LAB_GROUPS),-group $(g))

lab-down: labctl
	$(LABCTL) down -name $(LAB_NAME)

lab-status: labctl
	$(LABCTL) status -name $(LAB_NAME)

# The e2e tests run as three shards at once (mk/lanes.sh), each with its own labs (lab names carry the PID).
# E2E_SHARD_A and E2E_SHARD_C pick shards a's and c's tests (the rest is shard b), balanced by the lab time
# each test took in `make test` (shards a, b and c ended after 2574, 2596 and 2441 s on 2026-12-06). `make test` runs the other layers after
# them and the hosted tests in a fourth lane beside them (the Makefile's test target); `make e2e` runs the
# three shards alone.
E2E_SHARD_A ?= ^(TestReplaceNodes|TestScaleCluster|TestCleanup.*|TestReadmeRoleExample|TestUnitsOverDBus)$$
E2E_SHARD_C ?= ^(TestForceNewCluster|TestRecoverMember|TestRestoreFromSnapshot|TestRestoreFromBackupWhenNoMemberAnswers|TestEtcd3ConsumersWithoutRecordedMigration|TestSecondRunIsRefusedWhileTheLockIsHeld|TestModuleKillOnlineCopy|TestRollbackFromCopiesOfDifferentLength)$$
E2E_RUN   := cd tests/e2e && ../../build/e2e.test -test.count=1 -test.v -test.timeout 85m
.PHONY: e2e e2e-build e2e-shard-a e2e-shard-b e2e-shard-c test-lab
e2e-build: deps install labctl etcd36 etcd-old
	$(GO) test -c -o build/e2e.test ./tests/e2e

# The shards run the test binary e2e-build left (built once, not by each shard at the same time).
e2e-shard-a:
	$(E2E_RUN) -test.run '$(E2E_SHARD_A)'
e2e-shard-b:
	$(E2E_RUN) -test.skip '$(E2E_SHARD_A)|$(E2E_SHARD_C)'
e2e-shard-c:
	$(E2E_RUN) -test.run '$(E2E_SHARD_C)'

test-lab: labctl
	$(GO) test -count=1 -timeout 20m ./lab/...

e2e: e2e-build test-lab
	@MAKE=$(MAKE) mk/lanes.sh build/e2e-logs e2e-shard-a e2e-shard-b e2e-shard-c

demo: deps install labctl
	$(LABCTL) demo -name demo -keys $(DEMO_KEYS) -playbook $(DEMO_PLAYBOOK) $(if $(filter 1 yes true,$(KEEP)),-keep)

EXTRA_TEST_TARGETS += test-lab

# Lab costs: 3-host up+down from the cached base, seeding 2000 v2 keys.
.PHONY: bench-lab
bench-lab:
	$(BENCH_RECORD) $(GO) test -count=1 -run '^$$' -bench . -benchtime 3x -timeout 10m ./lab/ 2>&1 | tee $(BENCH_DIR)/$@.txt
bench: bench-lab

# What one module task costs over SSH, as ratios to ansible.builtin.ping in the same run, and the first
# transfer to a host separately (docs/speed.md). BENCH_TASKS_COLLECTIONS=<dir> measures another install.
.PHONY: bench-tasks
bench-tasks: install labctl
	$(BENCH_RECORD) $(GO) test -count=1 -run '^$$' -bench TaskCost -benchtime 1x -timeout 30m -v ./tests/speed/ 2>&1 | tee $(BENCH_DIR)/$@.txt
bench: bench-tasks

# The modules' host cache over SSH (docs/speed.md): six playbook runs on a one-host lab, 41 s (7 min at load ≈20).
.PHONY: test-speed
test-speed: install labctl
	$(GO) test -count=1 -run TestModuleCache -timeout 20m ./tests/speed/
EXTRA_TEST_TARGETS += test-speed
