{#- The site PKI: one CA (made here, or the site's own from pillar) and, per role, the keys and
    certificates its services present. Keys are EC P-256 (every component accepts them; instant
    to make) and never rotate; a certificate is reissued 30 days before it expires, and the
    services watching it restart. #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set kube = ark.kubernetes %}
{%- set roles = ark.roles %}
{%- if 'control-plane' in roles %}

include:
  - kubernetes.control_plane.installed  # the etcd package, which makes the account owning etcd's keys
{%- endif %}

{%- macro san(address) -%}
{{ 'IP' if address | is_ip else 'DNS' }}:{{ address }}
{%- endmacro %}

{#- id: the state IDs are ark-pki-<id>-key and ark-pki-<id>-cert. subject: CN, and O for a
    Kubernetes group. usage: extendedKeyUsage. sans: subjectAltName entries. ca: the signing CA
    (state ID, cert, key), the site CA by default. owner: who reads the key (the service's user).
    after: more requisites of the key (the directory it goes in, the package that makes its owner). #}
{%- set site_ca = {'state': 'ark-pki-ca', 'cert': k8s.ca_cert, 'key': k8s.ca_key} %}
{%- macro leaf(id, cert, key, subject, usage, sans=[], ca=site_ca, owner='root', after=[]) %}
ark-pki-{{ id }}-key:
  x509.private_key_managed:
    - name: {{ key }}
    - algo: ec
    - keysize: 256
    - user: {{ owner }}
    - group: {{ owner }}
    - mode: '0600'
    - makedirs: True
    - require:
      - file: ark-pki-dir
{%- for requisite in after %}
      - {{ requisite }}
{%- endfor %}

ark-pki-{{ id }}-cert:
  x509.certificate_managed:
    - name: {{ cert }}
    - signing_cert: {{ ca.cert }}
    - signing_private_key: {{ ca.key }}
    - private_key: {{ key }}
    - subject: {{ subject | json }}
    - basicConstraints: critical, CA:false
    - keyUsage: critical, digitalSignature, keyEncipherment
    - extendedKeyUsage: {{ usage }}
{%-   if sans %}
    - subjectAltName: {{ sans | unique | list | json }}
{%-   endif %}
    - days_valid: 365
    - days_remaining: 30
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - {{ ca.state }}
      - x509: ark-pki-{{ id }}-key
{%- endmacro %}

{#- World-readable: certificates are public; each key file is 0600 on its own. #}
ark-pki-dir:
  file.directory:
    - name: {{ k8s.pki }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

{%- if ark.pki.ca.cert %}
{#- A site with its roles on several hosts: the one CA from pillar, the same on every host. Each
    host signs its own certificates with it, so each holds the key. #}
ark-pki-ca-key:
  file.managed:
    - name: {{ k8s.ca_key }}
    - contents_pillar: ark:pki:ca:key
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - file: ark-pki-dir

ark-pki-ca:
  file.managed:
    - name: {{ k8s.ca_cert }}
    - contents_pillar: ark:pki:ca:cert
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - file: ark-pki-ca-key
{%- else %}
{#- An all-in-one host makes its own CA (ark/map.jinja allows this only with every role). #}
ark-pki-ca-key:
  x509.private_key_managed:
    - name: {{ k8s.ca_key }}
    - algo: ec
    - keysize: 256
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: ark-pki-dir

ark-pki-ca:
  x509.certificate_managed:
    - name: {{ k8s.ca_cert }}
    - signing_private_key: {{ k8s.ca_key }}
    - CN: ark-site-ca
    - basicConstraints: critical, CA:true
    - keyUsage: critical, keyCertSign, cRLSign, digitalSignature
    - subjectKeyIdentifier: hash
    - days_valid: 3650
    - days_remaining: 90
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - x509: ark-pki-ca-key
{%- endif %}

{%- if 'control-plane' in roles %}
{%-   set api_sans = [san(ark.node_ip), san(kube.apiserver.address), 'IP:127.0.0.1', 'IP:' ~ k8s.service_ip,
                      'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc',
                      'DNS:kubernetes.default.svc.cluster.local'] %}
{{ leaf('apiserver', k8s.pki ~ '/apiserver.crt', k8s.pki ~ '/apiserver.key',
        {'CN': 'kube-apiserver'}, 'serverAuth', api_sans) }}
{#- The apiserver's identity towards kubelets (logs, exec). #}
{{ leaf('apiserver-kubelet-client', k8s.pki ~ '/apiserver-kubelet-client.crt', k8s.pki ~ '/apiserver-kubelet-client.key',
        {'CN': 'kube-apiserver-kubelet-client', 'O': 'system:masters'}, 'clientAuth') }}
{{ leaf('controller-manager', k8s.pki ~ '/controller-manager.crt', k8s.pki ~ '/controller-manager.key',
        {'CN': 'system:kube-controller-manager'}, 'clientAuth') }}
{{ leaf('scheduler', k8s.pki ~ '/scheduler.crt', k8s.pki ~ '/scheduler.key',
        {'CN': 'system:kube-scheduler'}, 'clientAuth') }}

{#- etcd's own CA, made on this host and never leaving it: etcd trusts only what it signs, so of
    all the certificates on the site, only the API server's etcd client certificate opens etcd
    (with the site CA, any kubelet's or arkd's would). Server and peer certificates for loopback;
    etcd runs as etcd and reads its keys itself. #}
{%- set etcd_ca = {'state': 'ark-pki-etcd-ca', 'cert': k8s.etcd_pki ~ '/ca.crt', 'key': k8s.etcd_pki ~ '/ca.key'} %}
{#- Made before any file in it: a directory a key state makes is root's alone, and etcd reads its
    certificates here. #}
ark-pki-etcd-dir:
  file.directory:
    - name: {{ k8s.etcd_pki }}
    - user: root
    - group: root
    - mode: '0755'
    - require:
      - file: ark-pki-dir

ark-pki-etcd-ca-key:
  x509.private_key_managed:
    - name: {{ etcd_ca.key }}
    - algo: ec
    - keysize: 256
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: ark-pki-etcd-dir

ark-pki-etcd-ca:
  x509.certificate_managed:
    - name: {{ etcd_ca.cert }}
    - signing_private_key: {{ etcd_ca.key }}
    - CN: ark-etcd-ca
    - basicConstraints: critical, CA:true
    - keyUsage: critical, keyCertSign, cRLSign, digitalSignature
    - subjectKeyIdentifier: hash
    - days_valid: 3650
    - days_remaining: 90
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - x509: ark-pki-etcd-ca-key
{#- clientAuth too: etcd's own HTTP gateway connects to its gRPC port with this certificate. #}
{%- set etcd_key_after = ['file: ark-pki-etcd-dir', 'pkg: ark-etcd-package-installed'] %}
{{ leaf('etcd-server', k8s.etcd_pki ~ '/server.crt', k8s.etcd_pki ~ '/server.key',
        {'CN': 'ark-etcd'}, 'serverAuth, clientAuth', ['IP:127.0.0.1'], ca=etcd_ca, owner='etcd',
        after=etcd_key_after) }}
{{ leaf('etcd-peer', k8s.etcd_pki ~ '/peer.crt', k8s.etcd_pki ~ '/peer.key',
        {'CN': 'ark-etcd'}, 'serverAuth, clientAuth', ['IP:127.0.0.1'], ca=etcd_ca, owner='etcd',
        after=etcd_key_after) }}
{{ leaf('apiserver-etcd-client', k8s.pki ~ '/apiserver-etcd-client.crt', k8s.pki ~ '/apiserver-etcd-client.key',
        {'CN': 'kube-apiserver-etcd-client'}, 'clientAuth', ca=etcd_ca) }}

{#- Service-account tokens: the controller-manager and apiserver sign with the key, the
    apiserver verifies with the public half. #}
ark-pki-sa-key:
  x509.private_key_managed:
    - name: {{ k8s.sa_key }}
    - algo: ec
    - keysize: 256
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: ark-pki-dir

{#- Apiserver 1.20 cannot take the public key out of a PKCS#8 private key file, and Salt has no
    state for a public key file; the check keeps the pair matching even if the key is replaced. #}
ark-pki-openssl-installed:
  pkg.installed:
    - name: openssl

ark-pki-sa-pub:
  cmd.run:
    - name: openssl pkey -in {{ k8s.sa_key }} -pubout -out {{ k8s.sa_pub }} && chmod 0644 {{ k8s.sa_pub }}
    - unless: openssl pkey -in {{ k8s.sa_key }} -pubout | cmp -s - {{ k8s.sa_pub }}
    - require:
      - x509: ark-pki-sa-key
      - pkg: ark-pki-openssl-installed
{%- endif %}

{%- if 'control-plane' in roles %}
{{ leaf('admin', k8s.pki ~ '/admin.crt', k8s.pki ~ '/admin.key',
        {'CN': 'admin', 'O': 'system:masters'}, 'clientAuth') }}
{%- endif %}

{%- if 'worker' in roles %}
{#- The Node authorizer and NodeRestriction know a kubelet by this exact name and group. #}
{{ leaf('kubelet', k8s.pki ~ '/kubelet.crt', k8s.pki ~ '/kubelet.key',
        {'CN': 'system:node:' ~ kube.node_name, 'O': 'system:nodes'}, 'clientAuth') }}
{{ leaf('kubelet-serving', k8s.pki ~ '/kubelet-serving.crt', k8s.pki ~ '/kubelet-serving.key',
        {'CN': kube.node_name}, 'serverAuth', [san(ark.node_ip), 'DNS:' ~ kube.node_name]) }}
{%- endif %}

{%- if 'ce' in roles %}
{#- No group: RBAC from arc_bridge grants this user exactly what arkd needs. #}
{{ leaf('arkd', k8s.pki ~ '/arkd.crt', k8s.pki ~ '/arkd.key',
        {'CN': ark.bridge.kubernetes_user}, 'clientAuth') }}
{%-   if ark.arex.cert_from_pki %}
{#- A grid host certificate: A-REX serves TLS with it and presents it as a client, too. #}
{{ leaf('arex', k8s.pki ~ '/arex.crt', k8s.pki ~ '/arex.key',
        {'CN': ark.arex.hostname}, 'serverAuth, clientAuth', [san(ark.arex.hostname)]) }}
{%-   endif %}
{%- endif %}

{%- from "sessions/map.jinja" import sessions with context %}
{%- if sessions.enabled and roles | select('in', ['ce', 'worker']) | list %}
{#- The CE serves the session volume with it, and it and every worker mount the volume with it. #}
{{ leaf('sessions', sessions.cert, sessions.key, {'CN': sessions.cn}, 'serverAuth, clientAuth') }}
{%- endif %}

{%- if 'registry' in roles %}
{{ leaf('registry', ark.registry.tls.cert, ark.registry.tls.key,
        {'CN': ark.registry.address}, 'serverAuth', [san(ark.registry.address)]) }}
{%- endif %}
