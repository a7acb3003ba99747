package k8s

import _ "embed"

// clusterManifest: the default StorageClass (served by kube-controller-manager's host-path
// provisioner) and the kube-dns Service whose hand-made Endpoints point at CoreDNS, which runs as a
// process in the namespace.
//
//go:embed manifests/cluster.yaml
var clusterManifest string

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "%s", certificate-authority: "%s"}
users:
- name: admin
  user: {client-certificate: "%s", client-key: "%s"}
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
`

// containerd: its CRI plugin with cgroupfs (no systemd as PID 1), restrict_oom_score_adj (root lacks
// CAP_SYS_RESOURCE on this machine kind: every sandbox fails without it), pod network namespaces and
// all state under the lab directory, the locally built pause image as the sandbox image.
const containerdConfig = `version = 2
root = "%s"
state = "%s"
[grpc]
  address = "%s"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%s"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
`

const cniConfig = `{"cniVersion": "0.4.0", "name": "etcdops-k8s", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "%s"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "%s"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
`

// kubelet: cgroupfs, no image garbage collection or disk eviction (images exist only locally), swap
// tolerated, pod logs under the lab directory.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "%s"}
authorization: {mode: AlwaysAllow}
clusterDNS: ["%s"]
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
podLogsDir: "%s"
resolvConf: "%s"
containerRuntimeEndpoint: "%s"
address: "%s"
readOnlyPort: 0
healthzPort: 0
`

const corefile = `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`
