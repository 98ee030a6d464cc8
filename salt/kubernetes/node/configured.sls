{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set kube = ark.kubernetes %}

include:
  - kubernetes.pki
  - kubernetes.kubeconfigs
  - kubernetes.node.installed

{#- 0600: it holds the registry pull account's password. containerd pulls the sandbox image
    itself, with no image pull secret, and the registry refuses anonymous pulls. #}
ark-containerd-configured:
  file.managed:
    - name: /etc/containerd/config.toml
    - source: salt://kubernetes/files/containerd.toml.jinja
    - template: jinja
    - context:
        sandbox_image: {{ ark.registry_url }}/ark/pause:3.2
        registry: {{ ark.registry_url }}
        ca_cert: {{ k8s.ca_cert }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - pkg: ark-node-packages-installed

{#- Pods on one bridge per node. No masquerading: jobs get their input and output through
    A-REX's session directory, not the network. containerd sets up each pod's loopback itself,
    so this one network list is all the CNI configuration. #}
ark-cni-configured:
  file.serialize:
    - name: /etc/cni/net.d/10-ark-pods.conflist
    - serializer: json
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - dataset:
        cniVersion: 0.4.0
        name: ark-pods
        plugins:
          - type: bridge
            bridge: cni0
            isGateway: True
            ipMasq: False
            ipam:
              type: host-local
              ranges: [[{subnet: {{ kube.pod_cidr }}}]]

{#- Kernel settings of a node: forwarding for the pods' bridge, and the values kubelet insists on
    (its "kernel defaults"; it exits when it finds others and cannot change them). Where /proc/sys
    is read-only (a container host) whoever runs the host sets them; the check then passes. #}
{%- set sysctls = {
      'net.ipv4.ip_forward': 1,
      'vm.overcommit_memory': 1,
      'vm.panic_on_oom': 0,
      'kernel.panic': 10,
      'kernel.panic_on_oops': 1,
      'kernel.keys.root_maxkeys': 1000000,
      'kernel.keys.root_maxbytes': 25000000,
    } %}
{%- set checks = [] %}
{%- for name, value in sysctls | dictsort %}
{%-   do checks.append('test "$(sysctl -n ' ~ name ~ ')" = ' ~ value) %}
{%- endfor %}
ark-node-sysctl-configured:
  file.managed:
    - name: /etc/sysctl.d/60-ark-node.conf
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (ARK, formula kubernetes): local changes are overwritten.
{%- for name, value in sysctls | dictsort %}
        {{ name }} = {{ value }}
{%- endfor %}

ark-node-sysctl-applied:
  cmd.run:
    - name: sysctl -q -p /etc/sysctl.d/60-ark-node.conf
    - unless: {{ checks | join(' && ') | yaml_squote }}
    - require:
      - file: ark-node-sysctl-configured

{#- Formula defaults; pillar ark:kubernetes:kubelet_config overrides any field. #}
{%- set kubelet_config = salt['slsutil.merge']({
      'kind': 'KubeletConfiguration',
      'apiVersion': 'kubelet.config.k8s.io/v1beta1',
      'cgroupDriver': 'cgroupfs',
      'failSwapOn': False,
      'address': ark.node_ip,
      'readOnlyPort': 0,
      'authentication': {
        'x509': {'clientCAFile': k8s.ca_cert},
        'webhook': {'enabled': True},
        'anonymous': {'enabled': False},
      },
      'authorization': {'mode': 'Webhook'},
      'tlsCertFile': k8s.pki ~ '/kubelet-serving.crt',
      'tlsPrivateKeyFile': k8s.pki ~ '/kubelet-serving.key',
      'clusterDomain': 'cluster.local',
      'maxPods': [(kube.pod_cidr | network_size) - 3, 250] | min,
      'serializeImagePulls': False,
    }, kube.kubelet_config, strategy='recurse') %}
{#- maxPods: the bridge's IPAM hands out the pod range less network, broadcast and gateway. #}
ark-kubelet-configured:
  file.serialize:
    - name: {{ k8s.conf_dir }}/kubelet.yaml
    - serializer: yaml
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - dataset: {{ kubelet_config | json }}

{#- 1.20 takes these as flags only. #}
{%- set argv = [
      k8s.bin_dir ~ '/kubelet',
      '--config=' ~ k8s.conf_dir ~ '/kubelet.yaml',
      '--kubeconfig=' ~ k8s.conf_dir ~ '/kubelet.kubeconfig',
      '--container-runtime-endpoint=unix:///run/containerd/containerd.sock',
      '--node-ip=' ~ ark.node_ip,
      '--hostname-override=' ~ kube.node_name,
    ] + k8s.legacy_flags.remote_runtime %}
{%- if kube.node_labels %}
{%-   do argv.append('--node-labels=' ~ kube.node_labels | dictsort | map('join', '=') | join(',')) %}
{%- endif %}
ark-kubelet-unit:
  file.managed:
    - name: /etc/systemd/system/kubelet.service
    - source: salt://kubernetes/files/unit.service.jinja
    - template: jinja
    - context: {{ {'description': 'Kubernetes node agent', 'after': ['containerd.service'], 'argv': argv} | json }}
    - user: root
    - group: root
    - mode: '0644'
