{%- from "ark/map.jinja" import ark with context %}
{%- set kubectl = 'kubectl --kubeconfig ' ~ ark.kubernetes.admin_kubeconfig %}
{%- set manifests = ark.bridge.venv ~ '/bin/arc-bridge manifests --config /etc/ark/bridge.yaml --user ' ~ ark.bridge.kubernetes_user %}
{%- set pull = ark.registry.pull_user %}
{%- set docker_config = {'auths': {ark.registry_url: {
      'username': pull.name, 'password': pull.password,
      'auth': (pull.name ~ ':' ~ pull.password) | base64_encode}}} %}
{%- set objects = [] %}
{%- for name, vo in ark.vos | dictsort %}
{%-   set hard = {} %}
{%-   for resource, value in vo.quota | dictsort %}
{%-     do hard.update({resource: value | string}) %}
{%-   endfor %}
{%-   set limit = {'type': 'Container'} %}
{%-   for field, value in vo.limits | dictsort %}
{%-     set kind, resource = field.split('_') %}
{%-     do limit.setdefault(kind, {}).update({resource: value | string}) %}
{%-   endfor %}
{%-   do objects.extend([
        {'apiVersion': 'v1', 'kind': 'ResourceQuota',
         'metadata': {'name': 'ark-quota', 'namespace': vo.namespace},
         'spec': {'hard': hard}},
        {'apiVersion': 'v1', 'kind': 'LimitRange',
         'metadata': {'name': 'ark-limits', 'namespace': vo.namespace},
         'spec': {'limits': [limit]}},
        {'apiVersion': 'v1', 'kind': 'Secret', 'type': 'kubernetes.io/dockerconfigjson',
         'metadata': {'name': 'ark-registry-pull', 'namespace': vo.namespace},
         'data': {'.dockerconfigjson': docker_config | json | base64_encode}},
        {'apiVersion': 'v1', 'kind': 'ServiceAccount',
         'metadata': {'name': 'default', 'namespace': vo.namespace},
         'imagePullSecrets': [{'name': 'ark-registry-pull'}]},
      ]) %}
{%- endfor %}

{#- On the control plane, the one host with the cluster-admin kubeconfig: the CE keeps only arkd's
    own credential. #}
include:
  - arc_bridge.configured
  - kubernetes.binaries
  - kubernetes.kubeconfigs
  - kubernetes.control_plane.running

# kubectl diff exits 0 only when the cluster already matches, so a second highstate changes
# nothing, and an apply that failed (API server not up yet) is retried by the next one.
arc-bridge-cluster-objects-applied:
  cmd.run:
    - name: {{ manifests }} | {{ kubectl }} apply -f -
    - unless: {{ manifests }} | {{ kubectl }} diff -f -
    - retry:
        attempts: 10
        interval: 6
    - require:
      - file: arc-bridge-config-managed
      - file: ark-kubectl-installed
      - file: ark-kubeconfig-admin
      - cmd: ark-kube-apiserver-ready

# Holds the registry pull password: root only.
arc-bridge-vo-objects-managed:
  file.managed:
    - name: /etc/ark/kubernetes/vo-objects.yaml
    - contents: {{ ({'apiVersion': 'v1', 'kind': 'List', 'items': objects} | yaml(False)) | json }}
    - user: root
    - group: root
    - mode: "0600"
    - makedirs: True
    - show_changes: False

arc-bridge-vo-objects-applied:
  cmd.run:
    - name: {{ kubectl }} apply -f /etc/ark/kubernetes/vo-objects.yaml
    - unless: {{ kubectl }} diff -f /etc/ark/kubernetes/vo-objects.yaml
    - retry:
        attempts: 10
        interval: 6
    - require:
      - file: arc-bridge-vo-objects-managed
      - cmd: arc-bridge-cluster-objects-applied
      - file: ark-kubectl-installed
      - file: ark-kubeconfig-admin
