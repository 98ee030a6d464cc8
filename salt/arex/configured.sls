{%- from "ark/map.jinja" import ark with context %}
{%- set arex = ark.arex %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set from_pki = arex.cert_from_pki %}
{%- set cert_source = k8s.pki ~ '/arex.crt' if from_pki else arex.host_cert.cert %}
{%- set key_source = k8s.pki ~ '/arex.key' if from_pki else arex.host_cert.key %}
{#- The CAs trusted for users' certificates: the site CA unless the admin names a directory
    (e.g. IGTF's). Never /etc/grid-security/certificates by default: the package's postinst
    puts a test CA there, with its private key beside it. #}
{%- set site_ca = not arex.x509_cert_dir %}
{#- Where Debian's nordugrid-arc-arex puts ARC's own RTE scripts. #}
{%- set ARC_RTE_DIR = '/usr/share/arc/rte' %}
{%- set ca_dir = '/etc/ark/arex/certificates' if site_ca else arex.x509_cert_dir %}
{#- Each account's VO (ark/map.jinja checked the accounts). #}
{%- set owner = {} %}
{%- for vo, spec in ark.vos | dictsort %}
{%-   for user in spec.users %}
{%-     do owner.update({user: vo}) %}
{%-   endfor %}
{%- endfor %}
{#- Who carries out each RTE a VO may request. arkd, when it picks the job's image from it (the
    image RTE, or an RTE a VO maps to an image); A-REX, with ARC's own script of that name, when
    every VO maps it to null (ENV/PROXY, ENV/RTE, ...). #}
{%- set arkd_rtes = [ark.bridge.image_rte] %}
{%- set arc_rtes = [] %}
{%- for vo, spec in ark.vos | dictsort %}
{%-   for rte, image in spec.runtime_environments | dictsort if image is not none and rte not in arkd_rtes %}
{%-     do arkd_rtes.append(rte) %}
{%-   endfor %}
{%- endfor %}
{%- for vo, spec in ark.vos | dictsort %}
{%-   for rte in spec.runtime_environments if rte not in arkd_rtes and rte not in arc_rtes %}
{%-     do arc_rtes.append(rte) %}
{%-   endfor %}
{%- endfor %}

include:
  - arex.installed
{%- if from_pki or site_ca %}
  - kubernetes.pki
{%- endif %}

{% for user, vo in owner | dictsort %}
{%- set uid = ark.vos[vo].users[user] %}
ark-arex-group-{{ user }}-present:
  group.present:
    - name: {{ user }}
    - gid: {{ uid }}

ark-arex-account-{{ user }}-present:
  user.present:
    - name: {{ user }}
    - uid: {{ uid }}
    - gid: {{ uid }}
    - home: /nonexistent
    - createhome: False
    - shell: /usr/sbin/nologin
    - require:
      - group: ark-arex-group-{{ user }}-present

{% endfor %}
{#- Copies, not references: file.managed then reports a changed certificate (also one the
    admin replaced in place), which restarts both services in arex.running. #}
ark-arex-host-cert-installed:
  file.managed:
    - name: /etc/ark/arex/hostcert.pem
    - source: {{ cert_source }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
{%- if from_pki %}
    - require:
      - x509: ark-pki-arex-cert
{%- endif %}

ark-arex-host-key-installed:
  file.managed:
    - name: /etc/ark/arex/hostkey.pem
    - source: {{ key_source }}
    - user: root
    - group: root
    - mode: '0600'
    - makedirs: True
    - require:
      - file: ark-arex-host-cert-installed

{%- if site_ca %}

ark-arex-site-ca-installed:
  file.managed:
    - name: {{ ca_dir }}/ark-site-ca.pem
    - source: {{ k8s.ca_cert }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - require:
      - ark-pki-ca

{#- OpenSSL finds a CA in a directory by its subject hash; rehash replaces stale links, so
    it only has to run when the link for the current CA is missing. #}
ark-arex-site-ca-hashed:
  cmd.run:
    - name: openssl rehash {{ ca_dir }}
    - unless: test -e "{{ ca_dir }}/$(openssl x509 -hash -noout -in {{ ca_dir }}/ark-site-ca.pem).0"
    - require:
      - file: ark-arex-site-ca-installed
      - pkg: ark-arex-packages-installed
{%- endif %}

{% for vo, spec in ark.vos | dictsort %}
ark-arex-authgroup-{{ vo }}-subjects:
  file.managed:
    - name: /etc/ark/arex/authgroups/{{ vo }}.dns
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
{%- for dn in spec.dns %}
        "{{ dn }}"
{%- endfor %}

{% endfor %}
ark-arex-controldir-present:
  file.directory:
    - name: {{ arex.controldir }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

ark-arex-sessiondir-present:
  file.directory:
    - name: {{ arex.sessiondir }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

{#- A-REX refuses a tmpdir that is not world-writable and sticky. #}
ark-arex-tmpdir-present:
  file.directory:
    - name: {{ arex.tmpdir }}
    - user: root
    - group: root
    - mode: '1777'
    - makedirs: True

{#- Made in advance: without it arc-arex-ws-start spends minutes in `openssl dhparam 4096`. #}
ark-arex-dhparams-present:
  cmd.run:
    - name: openssl dhparam -dsaparam -out {{ arex.controldir }}/dhparam.pem 2048
    - creates: {{ arex.controldir }}/dhparam.pem
    - umask: '0177'
    - require:
      - file: ark-arex-controldir-present
      - pkg: ark-arex-packages-installed

{#- A-REX pastes each requested RTE's script into the job script as the body of a shell function
    and calls it at stages 0, 1 and 2, so the script must hold at least one command: a body of
    comments alone is a syntax error that fails every job asking for the RTE. Enabled the way
    `arcctl rte enable` does it: a link under controldir/rte/enabled. #}
{%- for rte in arkd_rtes %}

ark-arex-rte-{{ rte }}-present:
  file.managed:
    - name: {{ arex.runtimedir }}/{{ rte }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
        # description: ARK: arkd runs the job in the container image this RTE names
        # ARK's arkd reads the RTE when it builds the job's pod ({{ "the image is the RTE's first option" if rte == ark.bridge.image_rte else "pillar ark:vos:<VO>:runtime_environments maps it to an image" }}).
        # Inside the job there is nothing left to set up.
        :

ark-arex-rte-{{ rte }}-enabled:
  file.symlink:
    - name: {{ arex.controldir }}/rte/enabled/{{ rte }}
    - target: {{ arex.runtimedir }}/{{ rte }}
    - makedirs: True
    - force: True
    - require:
      - file: ark-arex-rte-{{ rte }}-present
      - file: ark-arex-controldir-present
{%- endfor %}
{%- for rte in arc_rtes %}

{#- An RTE that ARC does not ship has no script to run: fail here, naming it, rather than
    enabling a dangling link that fails each job at submit. #}
ark-arex-rte-{{ rte }}-shipped-by-arc:
  file.exists:
    - name: {{ ARC_RTE_DIR }}/{{ rte }}
    - require:
      - pkg: ark-arex-packages-installed

ark-arex-rte-{{ rte }}-enabled:
  file.symlink:
    - name: {{ arex.controldir }}/rte/enabled/{{ rte }}
    - target: {{ ARC_RTE_DIR }}/{{ rte }}
    - makedirs: True
    - force: True
    - require:
      - file: ark-arex-rte-{{ rte }}-shipped-by-arc
      - file: ark-arex-controldir-present
{%- endfor %}

ark-arex-config-managed:
  file.managed:
    - name: /etc/arc.conf
    - source: salt://arex/files/arc.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        host_cert: /etc/ark/arex/hostcert.pem
        host_key: /etc/ark/arex/hostkey.pem
        ca_dir: {{ ca_dir }}
        authgroup_dir: /etc/ark/arex/authgroups
    - require:
      - pkg: ark-arex-packages-installed
