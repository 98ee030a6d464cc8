{#- The site CA, and the directory of the site's keys and certificates. With a Salt master, the
    CA's key is on the CA server alone (pillar ark:pki:ca_server, the master's own minion), which
    signs every other host's certificates (kubernetes/signing.sls). #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set remote = ark.pki.ca_server and ark.pki.ca_server != grains.id %}

{#- World-readable: certificates are public; each key file is 0600 on its own. #}
ark-pki-dir:
  file.directory:
    - name: {{ k8s.pki }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

{%- if ark.pki.ca.cert %}
{#- A site with its roles on several hosts: the one CA from pillar, the same on every host.
    Masterless, each host signs its own certificates with it, so each holds the key; with a
    master, only the CA server does, and a host that held it before loses it. #}
{%-   if remote %}
ark-pki-ca-key:
  file.absent:
    - name: {{ k8s.ca_key }}
{%-   else %}
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
{%-   endif %}

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
