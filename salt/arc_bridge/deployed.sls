{%- from "ark/map.jinja" import ark with context %}
{%- set kubectl = 'kubectl --kubeconfig ' ~ ark.kubernetes.admin_kubeconfig %}
{%- set manifests = ark.bridge.venv ~ '/bin/arc-bridge manifests --config /etc/ark/bridge.yaml --user ' ~ ark.bridge.kubernetes_user %}
{%- set sessions = ark.bridge.session_volume %}
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
         'data': {'.dockerconfigjson': ark.registry_pull_config | json | base64_encode}},
        {'apiVersion': 'v1', 'kind': 'ServiceAccount',
         'metadata': {'name': 'default', 'namespace': vo.namespace},
         'imagePullSecrets': [{'name': 'ark-registry-pull'}]},
      ]) %}
{#-   The session volume ARK serves (salt/sessions): in each VO namespace the claim pods mount,
      bound to a volume of its own (a claim binds one volume) that names the same GlusterFS
      volume, and the CE's address as the Endpoints the in-tree glusterfs plugin mounts from. The
      size is nominal: GlusterFS enforces none. #}
{%-   if sessions.type == 'glusterfs' %}
{%-     set meta = {'name': sessions.claim_name, 'namespace': vo.namespace} %}
{%-     set storage = {'storage': '1Ti'} %}
{%-     do objects.extend([
          {'apiVersion': 'v1', 'kind': 'Service', 'metadata': meta,
           'spec': {'ports': [{'port': 24007, 'protocol': 'TCP'}]}},
          {'apiVersion': 'v1', 'kind': 'Endpoints', 'metadata': meta,
           'subsets': [{'addresses': [{'ip': sessions.glusterfs.server}], 'ports': [{'port': 24007, 'protocol': 'TCP'}]}]},
          {'apiVersion': 'v1', 'kind': 'PersistentVolume',
           'metadata': {'name': sessions.claim_name ~ '-' ~ vo.namespace},
           'spec': {'capacity': storage, 'accessModes': ['ReadWriteMany'], 'storageClassName': '',
                    'persistentVolumeReclaimPolicy': 'Retain', 'claimRef': meta,
                    'glusterfs': {'endpoints': sessions.claim_name, 'path': sessions.glusterfs.volume}}},
          {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': meta,
           'spec': {'accessModes': ['ReadWriteMany'], 'storageClassName': '', 'resources': {'requests': storage},
                    'volumeName': sessions.claim_name ~ '-' ~ vo.namespace}},
        ]) %}
{%-   endif %}
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
