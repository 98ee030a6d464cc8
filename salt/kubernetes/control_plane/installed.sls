{#- Debian's etcd (3.4) and the control-plane binaries from the files repository. #}
include:
  - kubernetes.binaries

ark-etcd-package-installed:
  pkg.installed:
    - name: etcd-server
