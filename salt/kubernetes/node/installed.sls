{#- Debian's container runtime and CNI plugins, the tools kubelet calls, and the kubelet binary. #}
include:
  - kubernetes.binaries

ark-node-packages-installed:
  pkg.installed:
    - pkgs:
      - containerd
      - runc
      - containernetworking-plugins
      - iptables
      - conntrack
      - socat
