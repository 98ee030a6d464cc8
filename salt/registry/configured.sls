{%- from "ark/map.jinja" import ark with context %}
{%- set users = [ark.registry.pull_user] + (ark.registry.push_users.values() | list) %}
{%- set config = {
      'version': 0.1,
      'log': {'fields': {'service': 'registry'}},
      'storage': {
        'filesystem': {'rootdirectory': ark.registry.storage},
        'delete': {'enabled': True},
        'cache': {'blobdescriptor': 'inmemory'},
      },
      'http': {
        'addr': ark.registry_url,
        'tls': {'certificate': '/etc/docker/registry/tls.crt', 'key': '/etc/docker/registry/tls.key'},
        'headers': {'X-Content-Type-Options': ['nosniff']},
      },
      'auth': {'htpasswd': {'realm': 'ARK registry', 'path': '/etc/docker/registry/htpasswd'}},
      'health': {'storagedriver': {'enabled': True, 'interval': '10s', 'threshold': 3}},
    } %}

include:
  - registry.installed
  - kubernetes.pki

# The package's own config points htpasswd.path at a directory and so refuses every request.
registry-config-managed:
  file.managed:
    - name: /etc/docker/registry/config.yml
    - contents: {{ ("# Managed by Salt (salt/registry) from pillar ark:registry.\n" ~ (config | yaml(False))) | json }}
    - user: root
    - group: docker-registry
    - mode: "0640"
    - require:
      - pkg: registry-packages-installed

# The registry runs as docker-registry and reads its own copy of the key, so the PKI formula
# keeps its files root-only.
registry-tls-cert-installed:
  file.managed:
    - name: /etc/docker/registry/tls.crt
    - source: {{ ark.registry.tls.cert }}
    - user: root
    - group: docker-registry
    - mode: "0644"
    - require:
      - pkg: registry-packages-installed
      - x509: ark-pki-registry-cert

registry-tls-key-installed:
  file.managed:
    - name: /etc/docker/registry/tls.key
    - source: {{ ark.registry.tls.key }}
    - user: root
    - group: docker-registry
    - mode: "0640"
    - show_changes: False
    - require:
      - pkg: registry-packages-installed
      - x509: ark-pki-registry-cert

registry-htpasswd-file-present:
  file.managed:
    - name: /etc/docker/registry/htpasswd
    - user: root
    - group: docker-registry
    - mode: "0640"
    - replace: False
    - require:
      - pkg: registry-packages-installed

{%- for user in users %}

# bcrypt, the only hash the registry accepts. The password reaches htpasswd through the
# environment and stdin, never the command line, and is rewritten only when it no longer verifies.
registry-user-{{ user.name }}-present:
  cmd.run:
    - name: printenv ARK_REGISTRY_PASSWORD | htpasswd -iB /etc/docker/registry/htpasswd {{ user.name }}
    - unless: printenv ARK_REGISTRY_PASSWORD | htpasswd -iv /etc/docker/registry/htpasswd {{ user.name }}
    - env:
      - ARK_REGISTRY_PASSWORD: {{ user.password | json }}
    - require:
      - file: registry-htpasswd-file-present
{%- endfor %}

# Accounts dropped from pillar lose access.
registry-users-not-in-pillar-absent:
  file.replace:
    - name: /etc/docker/registry/htpasswd
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
