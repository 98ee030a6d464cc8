{#- The site PKI: per role, the keys and certificates its services present, signed by the site CA
    (kubernetes/ca.sls) here or, with a Salt master, on the CA server, which decides what each
    certificate says by the policy kubernetes/signing.sls gave it for this host and certificate.
    Keys are EC P-256 (every component accepts them; instant to make), are made here and never
    rotate; a certificate is reissued 30 days before it expires, and the services watching it
    restart. #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set kube = ark.kubernetes %}
{%- set roles = ark.roles %}
{%- set includes = ['kubernetes.ca'] %}
{%- if 'control-plane' in roles %}
{%-   do includes.append('kubernetes.control_plane.installed') %}  {#- the etcd package, which makes the account owning etcd's keys #}
{%- endif %}
{%- if ark.pki.ca_server and ark.pki.ca_server == grains.id %}
{%-   do includes.append('kubernetes.signing') %}  {#- this host signs for the others #}
{%- endif %}

include: {{ includes | json }}

{%- from "sessions/map.jinja" import sessions with context %}
{%- from "kubernetes/leaves.jinja" import certificate_fields, signing_policy, site_leaves %}
{%- set ca_server = ark.pki.ca_server %}
{%- set remote = ca_server and ca_server != grains.id %}

{#- id, cert, key, subject, usage, sans: as kubernetes/leaves.jinja describes. ca: the signing CA
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
    - private_key: {{ key }}
{%-   if remote and ca is sameas site_ca %}
    - ca_server: {{ ca_server }}
    - signing_policy: {{ signing_policy(grains.id, id) }}
{%-   else %}
    - signing_cert: {{ ca.cert }}
    - signing_private_key: {{ ca.key }}
{%-     set fields = {} %}
{%-     do certificate_fields(fields, subject, usage, sans) %}
{%-     for name, value in fields | dictsort %}
    - {{ name }}: {{ value | json }}
{%-     endfor %}
{%-   endif %}
    - days_remaining: 30
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - {{ ca.state }}
      - x509: ark-pki-{{ id }}-key
{%- endmacro %}


{%- if 'control-plane' in roles %}
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

{#- The site CA's certificates of this host's roles. #}
{%- set issued = {} %}
{%- do site_leaves(issued, ark, k8s, sessions, roles, kube.node_name, ark.node_ip) %}
{%- for id, certificate in issued | dictsort %}
{{ leaf(id, certificate.cert, certificate.key, certificate.subject, certificate.usage, certificate.sans) }}
{%- endfor %}
