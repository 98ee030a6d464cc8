{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set kube = ark.kubernetes %}

include:
  - kubernetes.pki
  - kubernetes.kubeconfigs
  - kubernetes.control_plane.installed

{#- Debian's etcd.service reads this file. etcd listens on loopback only, and even there it
    holds every Secret of the cluster: TLS, and a client must present a certificate of etcd's own
    CA (kubernetes/pki.sls), which only the apiserver has. The peer port is TLS too, with mutual
    authentication, so that a second member could only ever join with a certificate of that CA.
    Its own data dir, not Debian's default one: the package starts etcd with its defaults on
    install, and a member bootstrapped under another name would refuse this configuration. #}
{%- set etcd_pki = k8s.etcd_pki %}
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
        ETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:2379
        ETCD_ADVERTISE_CLIENT_URLS=https://127.0.0.1:2379
        ETCD_CERT_FILE={{ etcd_pki }}/server.crt
        ETCD_KEY_FILE={{ etcd_pki }}/server.key
        ETCD_CLIENT_CERT_AUTH=true
        ETCD_TRUSTED_CA_FILE={{ etcd_pki }}/ca.crt
        ETCD_LISTEN_PEER_URLS=https://127.0.0.1:2380
        ETCD_INITIAL_ADVERTISE_PEER_URLS=https://127.0.0.1:2380
        ETCD_INITIAL_CLUSTER=ark=https://127.0.0.1:2380
        ETCD_PEER_CERT_FILE={{ etcd_pki }}/peer.crt
        ETCD_PEER_KEY_FILE={{ etcd_pki }}/peer.key
        ETCD_PEER_CLIENT_CERT_AUTH=true
        ETCD_PEER_TRUSTED_CA_FILE={{ etcd_pki }}/ca.crt
    - require:
      - pkg: ark-etcd-package-installed

{%- set units = {
      'kube-apiserver': {
        'description': 'Kubernetes API server',
        'after': ['etcd.service'],
        'argv': [
          k8s.bin_dir ~ '/kube-apiserver',
          '--etcd-servers=https://127.0.0.1:2379',
          '--etcd-cafile=' ~ k8s.etcd_pki ~ '/ca.crt',
          '--etcd-certfile=' ~ k8s.pki ~ '/apiserver-etcd-client.crt',
          '--etcd-keyfile=' ~ k8s.pki ~ '/apiserver-etcd-client.key',
          '--bind-address=' ~ ark.node_ip,
          '--advertise-address=' ~ ark.node_ip,
          '--secure-port=' ~ kube.apiserver.port,
          '--tls-cert-file=' ~ k8s.pki ~ '/apiserver.crt',
          '--tls-private-key-file=' ~ k8s.pki ~ '/apiserver.key',
          '--client-ca-file=' ~ k8s.ca_cert,
          '--service-cluster-ip-range=' ~ kube.service_cidr,
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=' ~ k8s.legacy_flags.admission_plugins | join(','),
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
          '--node-monitor-grace-period=' ~ kube.node_monitor_grace_seconds ~ 's',
        ] + k8s.legacy_flags.insecure_port_off,
      },
      'kube-scheduler': {
        'description': 'Kubernetes scheduler',
        'after': ['kube-apiserver.service'],
        'argv': [
          k8s.bin_dir ~ '/kube-scheduler',
          '--config=' ~ k8s.conf_dir ~ '/scheduler.yaml',
          '--bind-address=127.0.0.1',
        ],
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
    - one control-plane node, so no leader election;
    - the scheduler reads its kubeconfig, leader election and back-off from its configuration
      file (kubernetes:scheduler_backoff_seconds: a pod waiting for CPUs is tried again that
      soon, not after Kubernetes' 10 s); with a configuration file the scheduler ignores --port=0,
      so the file binds the plain-HTTP healthz and metrics of releases before 1.23 to loopback
      (ark check lists that listener), and turns profiling off, which that port would serve
      to any local account. #}
ark-kube-scheduler-configured:
  file.managed:
    - name: {{ k8s.conf_dir }}/scheduler.yaml
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (ARK, formula kubernetes): local changes are overwritten.
        apiVersion: {{ k8s.legacy_flags.scheduler_config_api }}
        kind: KubeSchedulerConfiguration
        clientConnection:
          kubeconfig: {{ k8s.conf_dir }}/scheduler.kubeconfig
        leaderElection:
          leaderElect: false
        podInitialBackoffSeconds: 1
        podMaxBackoffSeconds: {{ kube.scheduler_backoff_seconds }}
        enableProfiling: false
{%- if k8s.legacy_flags.scheduler_plain_http %}
        healthzBindAddress: {{ k8s.legacy_flags.scheduler_plain_http }}
        metricsBindAddress: {{ k8s.legacy_flags.scheduler_plain_http }}
{%- endif %}
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
