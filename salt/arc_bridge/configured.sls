{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set pull_config = '/etc/ark/registry-pull.json' %}
{%- set config = ark.bridge_config %}
{%- if 'ce' in ark.roles %}
{#-   On the CE, arkd reads each new image once with the pull account to refuse at submit one
      without /bin/sh. #}
{%-   set config = dict(config, image_check={'docker_config': pull_config, 'ca_file': k8s.ca_cert}) %}
{%- endif %}

{#- arkd's configuration on the CE; on the control plane, what `arc-bridge manifests` renders the
    cluster's objects from (arc_bridge.deployed). #}
include:
  - arc_bridge.installed

# check_cmd runs the new file through arkd's own validation before it replaces the old one, so a
# config arkd would refuse fails here, naming the key, instead of crash-looping the service.
arc-bridge-config-managed:
  file.managed:
    - name: /etc/ark/bridge.yaml
    - contents: {{ ("# Managed by Salt from pillar ark (salt/ark/map.jinja: bridge_config).\n" ~ (config | yaml(False))) | json }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: True
    - check_cmd: {{ ark.bridge.venv }}/bin/arc-bridge manifests --config
    - require:
      - cmd: arc-bridge-package-installed

{%- if 'ce' in ark.roles %}

# The registry pull password: root only (arkd is root).
arc-bridge-registry-pull-managed:
  file.managed:
    - name: {{ pull_config }}
    - contents: {{ ark.registry_pull_config | json | json }}
    - user: root
    - group: root
    - mode: "0600"
    - makedirs: True
    - show_changes: False
    - require_in:
      - file: arc-bridge-config-managed
{%- endif %}

{%- if 'control-plane' not in ark.roles %}

# The cluster's objects are applied from the control plane; an earlier ARK left their file (with
# the registry pull password) on the CE.
arc-bridge-vo-objects-absent:
  file.absent:
    - name: /etc/ark/kubernetes/vo-objects.yaml
{%- endif %}
