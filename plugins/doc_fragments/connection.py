# -*- coding: utf-8 -*-
# Connection options shared by every etcdops.etcd module (implemented in pkg/etcdconn).


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  endpoints:
    description:
      - etcd client URLs, as a list or a comma-separated string.
      - Falls back to C(ETCDCTL_ENDPOINTS) when not given.
    type: list
    elements: str
    default: [https://127.0.0.1:2379]
  ca_cert:
    description:
      - CA certificate that signed the etcd server certificates (OpenShift 3.x C(/etc/etcd/ca.crt)).
      - Falls back to C(ETCDCTL_CACERT), then C(ETCDCTL_CA_FILE) (etcdctl's v2 name).
    type: path
  client_cert:
    description:
      - Client certificate for client-certificate auth (e.g. C(/etc/etcd/peer.crt)); goes with I(client_key).
      - Falls back to C(ETCDCTL_CERT), then C(ETCDCTL_CERT_FILE).
    type: path
  client_key:
    description:
      - Key of I(client_cert). Falls back to C(ETCDCTL_KEY), then C(ETCDCTL_KEY_FILE).
    type: path
  user:
    description:
      - etcd user for password auth. Falls back to C(ETCDCTL_USER).
    type: str
  password:
    description:
      - Password of I(user). Never printed in any result or error.
      - Falls back to C(ETCDCTL_PASSWORD).
    type: str
  dial_timeout:
    description:
      - How long to wait for a connection, as a duration (C(5s)) or seconds.
    type: str
    default: 5s
  command_timeout:
    description:
      - How long one request may take, as a duration (C(30s)) or seconds.
    type: str
    default: 30s
'''
