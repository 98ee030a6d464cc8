include:
  - arc_bridge.configured
  - arc_bridge.deployed
  - arex.configured
  - kubernetes.kubeconfigs

arkd-service-running:
  service.running:
    - name: arkd
    - enable: True
    # arkd lists Jobs and pods as soon as it starts: its RBAC must be there first. Its unit makes
    # the control directory and session root writable, so they must exist.
    - require:
      - cmd: arc-bridge-cluster-objects-applied
      - file: ark-arex-controldir-present
      - file: ark-arex-sessiondir-present
    - watch:
      - file: arc-bridge-config-managed
      - file: arkd-unit-managed
      - cmd: arc-bridge-package-installed
      - file: ark-kubeconfig-arkd
