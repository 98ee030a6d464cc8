{#- A single-node control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler. #}
include:
  - kubernetes.control_plane.installed
  - kubernetes.control_plane.configured
  - kubernetes.control_plane.running
