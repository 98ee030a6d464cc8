{#- Debian's container runtime and CNI plugins, the tools kubelet calls, and the kubelet binary. #}
{%- from "ark/map.jinja" import ark with context %}

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
