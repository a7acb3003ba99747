# The k8s lab (lab/k8s, docs/hosted.md): a single-node Kubernetes built from the Go module proxy, with
# containerd, runc and the CNI plugins from Debian, running seed 002's hosted etcd StatefulSet.
#   make k8s-binaries      kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#                          kubectl, CoreDNS and the pause and etcd images, cached by version outside the
#                          checkout in $(K8S_CACHE)/$(K8S_VERSION) (10–26 min cold at -p=1; 0.1 s warm)
#   make k8s-lab-up        the cluster and its hosted control plane (one per machine)
#   make k8s-lab-down
#   make test-hosted       tests/hosted in the lab, building what is missing
#   make test-hosted-cached  the same without building: part of `make test` (≈35 s on a machine whose cache
#                          is warm; on a cold one the test skips, naming `make k8s-binaries`)
K8S_VERSION     ?= v1.31.4
COREDNS_VERSION ?= v1.11.4
K8S_CACHE       ?= /var/cache/etcdops-k8s
# python3-kubernetes: the client kubernetes.core (shipped with Debian's ansible) needs for the hosted playbooks.
K8S_DEB_PACKAGES := containerd runc containernetworking-plugins busybox-static iproute2 util-linux python3-kubernetes

.PHONY: k8s-deps k8s-binaries k8s-lab-up k8s-lab-down test-hosted
k8s-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(K8S_DEB_PACKAGES)"

# The etcd image carries the 3.6 binaries of `make etcd36`; build.sh skips whatever is cached.
k8s-binaries: k8s-deps etcd36
	@GO=$(GO) lab/k8s/build.sh $(K8S_CACHE)/$(K8S_VERSION) $(K8S_VERSION) $(COREDNS_VERSION) $(CURDIR)/$(ETCD36_DIR)

k8s-lab-up: k8s-binaries labctl
	$(LABCTL) k8s-up -cache $(K8S_CACHE) -version $(K8S_VERSION)

k8s-lab-down: labctl
	$(LABCTL) k8s-down

test-hosted: k8s-binaries
	$(GO) test -count=1 -v -timeout 70m ./tests/hosted/

.PHONY: test-hosted-cached
test-hosted-cached: k8s-deps
	$(GO) test -count=1 -v -timeout 70m ./tests/hosted/

EXTRA_TEST_TARGETS += test-hosted-cached

