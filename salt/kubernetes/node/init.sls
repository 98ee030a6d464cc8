{#- A worker node: containerd with the CRI settings and CNI bridge, and the kubelet. #}
include:
  - kubernetes.node.installed
  - kubernetes.node.configured
  - kubernetes.node.running
