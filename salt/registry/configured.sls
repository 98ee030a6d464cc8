{%- from "ark/map.jinja" import ark with context %}
{%- set users = [ark.registry.pull_user, ark.registry.admin_user] + (ark.registry.push_users.values() | list) %}
{%- set htpasswd = '/etc/ark/registry/htpasswd' %}
{#- No accounts of its own: nginx in front does TLS, accounts and permissions
    (files/nginx-registry.conf.jinja). So the registry listens on a Unix socket in a directory
    only its own account and nginx's workers (group ark-registry) may enter: on loopback, any
    local account could push anything anywhere. Relative URLs: upload locations then work
    through the proxy. #}
{%- set socket_dir = '/run/ark-registry' %}
{%- set config = {
      'version': 0.1,
      'log': {'fields': {'service': 'registry'}},
      'storage': {
        'filesystem': {'rootdirectory': ark.registry.storage},
        'delete': {'enabled': True},
        'cache': {'blobdescriptor': 'inmemory'},
      },
      'http': {
        'net': 'unix',
        'addr': socket_dir ~ '/registry.sock',
        'relativeurls': True,
        'headers': {'X-Content-Type-Options': ['nosniff']},
      },
      'health': {'storagedriver': {'enabled': True, 'interval': '10s', 'threshold': 3}},
    } %}

include:
  - registry.installed
  - kubernetes.pki

registry-config-managed:
  file.managed:
    - name: /etc/docker/registry/config.yml
    - contents: {{ ("# Managed by Salt (salt/registry) from pillar ark:registry.\n" ~ (config | yaml(False))) | json }}
    - user: root
    - group: docker-registry
    - mode: "0640"
    - require:
      - pkg: registry-packages-installed

{#- The socket's group. The registry runs with it as its primary group and a umask that keeps
    what it creates from others (the socket then is 0770); its storage stays under a directory of
    its own account's. nginx's workers join the group when they start (initgroups). #}
registry-socket-group-present:
  group.present:
    - name: ark-registry
    - system: True
    - addusers:
      - www-data
    - require:
      - pkg: registry-packages-installed

registry-service-dropin-managed:
  file.managed:
    - name: /etc/systemd/system/docker-registry.service.d/ark.conf
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: True
    - contents: |
        # Managed by Salt (salt/registry): the registry's socket, for nginx's workers only.
        [Service]
        Group=ark-registry
        SupplementaryGroups=docker-registry
        UMask=0007
        RuntimeDirectory={{ socket_dir.split('/')[-1] }}
        RuntimeDirectoryMode=0750
    - require:
      - group: registry-socket-group-present

{#- systemd only sees a new or changed drop-in after a reload. #}
registry-service-dropin-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: registry-service-dropin-managed

{#- nginx's master reads the TLS key as root; its workers (www-data) read the accounts. #}
registry-proxy-configured:
  file.managed:
    - name: /etc/nginx/conf.d/ark-registry.conf
    - source: salt://registry/files/nginx-registry.conf.jinja
    - template: jinja
    - context:
        htpasswd: {{ htpasswd }}
        backend: {{ config.http.addr }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - pkg: registry-packages-installed

# The package's default site listens on port 80 of every address.
registry-proxy-default-site-absent:
  file.absent:
    - name: /etc/nginx/sites-enabled/default
    - require:
      - pkg: registry-packages-installed

# Left by ARK before the proxy, when the registry served TLS and accounts itself.
registry-own-credentials-absent:
  file.absent:
    - names:
      - /etc/docker/registry/tls.key
      - /etc/docker/registry/tls.crt
      - /etc/docker/registry/htpasswd

registry-htpasswd-file-present:
  file.managed:
    - name: {{ htpasswd }}
    - user: root
    - group: www-data
    - mode: "0640"
    - makedirs: True
    - replace: False
    - require:
      - pkg: registry-packages-installed

{%- for user in users %}

# bcrypt (nginx checks it with the system's crypt). The password reaches htpasswd through the
# environment and stdin, never the command line, and is rewritten only when it no longer verifies.
registry-user-{{ user.name }}-present:
  cmd.run:
    - name: printenv ARK_REGISTRY_PASSWORD | htpasswd -iB {{ htpasswd }} {{ user.name }}
    - unless: printenv ARK_REGISTRY_PASSWORD | htpasswd -iv {{ htpasswd }} {{ user.name }}
    - env:
      - ARK_REGISTRY_PASSWORD: {{ user.password | json }}
    - require:
      - file: registry-htpasswd-file-present
{%- endfor %}

# Accounts dropped from pillar lose access.
registry-users-not-in-pillar-absent:
  file.replace:
    - name: {{ htpasswd }}
    - pattern: '^(?!({{ users | map(attribute='name') | map('regex_escape') | join('|') }}):).*\n'
    - repl: ''
    - flags: [MULTILINE]
    - backup: False  # a backup would keep the dropped accounts' hashes
    - show_changes: False
    - require:
{%- for user in users %}
      - cmd: registry-user-{{ user.name }}-present
{%- endfor %}

registry-storage-present:
  file.directory:
    - name: {{ ark.registry.storage }}
    - user: docker-registry
    - group: docker-registry
    - mode: "0750"
    - require:
      - pkg: registry-packages-installed
