{#- Debian's etcd (3.4) and the control-plane binaries from the files repository. #}
{%- from "ark/map.jinja" import ark with context %}

include:
  - kubernetes.binaries

ark-etcd-package-installed:
  pkg.installed:
    - name: etcd-server
