{%- from "ark/map.jinja" import ark with context %}
{%- set users = [ark.registry.pull_user, ark.registry.admin_user] + (ark.registry.push_users.values() | list) %}
{%- set htpasswd = '/etc/ark/registry/htpasswd' %}
{#- Plain HTTP on loopback, no accounts of its own: nginx in front does TLS, accounts and
    permissions (files/nginx-registry.conf.jinja). Relative URLs: upload locations then work
    through the proxy. #}
{%- set config = {
      'version': 0.1,
      'log': {'fields': {'service': 'registry'}},
      'storage': {
        'filesystem': {'rootdirectory': ark.registry.storage},
        'delete': {'enabled': True},
        'cache': {'blobdescriptor': 'inmemory'},
      },
      'http': {
        'addr': '127.0.0.1:' ~ ark.registry.backend_port,
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

{#- nginx's master reads the TLS key as root; its workers (www-data) read the accounts. #}
registry-proxy-configured:
  file.managed:
    - name: /etc/nginx/conf.d/ark-registry.conf
    - source: salt://registry/files/nginx-registry.conf.jinja
    - template: jinja
    - context:
        htpasswd: {{ htpasswd }}
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
