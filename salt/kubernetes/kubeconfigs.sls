{#- Kubeconfigs for the clients on this host. They name the PKI files rather than embedding
    them, so a reissued certificate needs no new kubeconfig. #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set roles = ark.roles %}

include:
  - kubernetes.pki

{%- set kubeconfigs = {} %}
{%- if 'control-plane' in roles %}
{%-   do kubeconfigs.update({
        'controller-manager': k8s.conf_dir ~ '/controller-manager.kubeconfig',
        'scheduler': k8s.conf_dir ~ '/scheduler.kubeconfig',
      }) %}
{%- endif %}
{%- if 'control-plane' in roles %}
{%-   do kubeconfigs.update({'admin': ark.kubernetes.admin_kubeconfig}) %}
{%- endif %}
{%- if 'worker' in roles %}
{%-   do kubeconfigs.update({'kubelet': k8s.conf_dir ~ '/kubelet.kubeconfig'}) %}
{%- endif %}
{%- if 'ce' in roles %}
{%-   do kubeconfigs.update({'arkd': ark.bridge.kubeconfig}) %}
{%- endif %}

{%- for name, path in kubeconfigs | dictsort %}

ark-kubeconfig-{{ name }}:
  file.serialize:
    - name: {{ path }}
    - serializer: yaml
    - user: root
    - group: root
    - mode: '0600'
    - makedirs: True
    - dir_mode: '0755'
    - dataset:
        apiVersion: v1
        kind: Config
        clusters:
          - name: ark-site
            cluster:
              server: {{ k8s.server }}
              certificate-authority: {{ k8s.ca_cert }}
        users:
          - name: {{ name }}
            user:
              client-certificate: {{ k8s.pki }}/{{ name }}.crt
              client-key: {{ k8s.pki }}/{{ name }}.key
        contexts:
          - name: ark-site
            context:
              cluster: ark-site
              user: {{ name }}
        current-context: ark-site
    - require:
      - x509: ark-pki-{{ name }}-cert
{%- endfor %}

{%- if 'control-plane' not in roles %}

{#- The cluster-admin credential stays on the control plane: an earlier ARK also gave it to the CE. #}
ark-admin-credential-absent:
  file.absent:
    - names:
      - {{ ark.kubernetes.admin_kubeconfig }}
      - {{ k8s.pki }}/admin.key
      - {{ k8s.pki }}/admin.crt
{%- endif %}
