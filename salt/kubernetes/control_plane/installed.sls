{#- Debian's etcd (3.4) and the control-plane binaries from the files repository. #}
include:
  - kubernetes.binaries

ark-etcd-package-installed:
  pkg.installed:
    - name: etcd-server
    # The package makes the etcd account, which owns etcd's keys.
    - require_in:
      - x509: ark-pki-etcd-server-key
      - x509: ark-pki-etcd-peer-key
