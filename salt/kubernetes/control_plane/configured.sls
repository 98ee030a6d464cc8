{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set kube = ark.kubernetes %}

include:
  - kubernetes.pki
  - kubernetes.kubeconfigs
  - kubernetes.control_plane.installed

{#- Debian's etcd.service reads this file. etcd listens on loopback only, in plain HTTP: the
    apiserver beside it is its only client. Its own data dir, not Debian's default one: the
    package starts etcd with its defaults on install, and a member bootstrapped under another
    name would refuse this configuration. #}
ark-etcd-configured:
  file.managed:
    - name: /etc/default/etcd
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (ARK, formula kubernetes): local changes are overwritten.
        ETCD_NAME=ark
        ETCD_DATA_DIR=/var/lib/etcd/ark
        ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379
        ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379
        ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380
        ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380
        ETCD_INITIAL_CLUSTER=ark=http://127.0.0.1:2380
    - require:
      - pkg: ark-etcd-package-installed

{%- set units = {
      'kube-apiserver': {
        'description': 'Kubernetes API server',
        'after': ['etcd.service'],
        'argv': [
          k8s.bin_dir ~ '/kube-apiserver',
          '--etcd-servers=http://127.0.0.1:2379',
          '--bind-address=' ~ ark.node_ip,
          '--advertise-address=' ~ ark.node_ip,
          '--secure-port=' ~ kube.apiserver.port,
          '--tls-cert-file=' ~ k8s.pki ~ '/apiserver.crt',
          '--tls-private-key-file=' ~ k8s.pki ~ '/apiserver.key',
          '--client-ca-file=' ~ k8s.ca_cert,
          '--service-cluster-ip-range=' ~ kube.service_cidr,
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=NodeRestriction',
          '--service-account-key-file=' ~ k8s.sa_pub,
          '--service-account-signing-key-file=' ~ k8s.sa_key,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          '--kubelet-client-certificate=' ~ k8s.pki ~ '/apiserver-kubelet-client.crt',
          '--kubelet-client-key=' ~ k8s.pki ~ '/apiserver-kubelet-client.key',
          '--kubelet-certificate-authority=' ~ k8s.ca_cert,
          '--kubelet-preferred-address-types=InternalIP',
        ],
      },
      'kube-controller-manager': {
        'description': 'Kubernetes controller manager',
        'after': ['kube-apiserver.service'],
        'argv': [
          k8s.bin_dir ~ '/kube-controller-manager',
          '--kubeconfig=' ~ k8s.conf_dir ~ '/controller-manager.kubeconfig',
          '--bind-address=127.0.0.1',
          '--leader-elect=false',
          '--use-service-account-credentials=true',
          '--service-account-private-key-file=' ~ k8s.sa_key,
          '--root-ca-file=' ~ k8s.ca_cert,
        ] + k8s.legacy_flags.insecure_port_off,
      },
      'kube-scheduler': {
        'description': 'Kubernetes scheduler',
        'after': ['kube-apiserver.service'],
        'argv': [
          k8s.bin_dir ~ '/kube-scheduler',
          '--kubeconfig=' ~ k8s.conf_dir ~ '/scheduler.kubeconfig',
          '--bind-address=127.0.0.1',
          '--leader-elect=false',
        ] + k8s.legacy_flags.insecure_port_off,
      },
    } %}
{#- Why the flags differ from the defaults:
    - the node's hostname need not resolve, its InternalIP routes (--kubelet-preferred-address-types);
    - --port=0 (before 1.24, kubernetes/map.jinja): plain, unauthenticated HTTP on every
      address otherwise;
    - each controller acts as its own service account (--use-service-account-credentials): the
      controller-manager's own role does not cover, e.g., the Job controller creating pods;
    - without --service-account-private-key-file the token controller stays off, service
      accounts get no token, and the Job controller cannot create pods;
    - one control-plane node, so no leader election. #}
{%- for name, unit in units | dictsort %}

ark-{{ name }}-unit:
  file.managed:
    - name: /etc/systemd/system/{{ name }}.service
    - source: salt://kubernetes/files/unit.service.jinja
    - template: jinja
    - context: {{ unit | json }}
    - user: root
    - group: root
    - mode: '0644'
{%- endfor %}
