include:
  - arc_bridge.configured
  - arc_bridge.deployed
  - kubernetes.kubeconfigs

arkd-service-running:
  service.running:
    - name: arkd
    - enable: True
    # arkd lists Jobs and pods as soon as it starts: its RBAC must be there first.
    - require:
      - cmd: arc-bridge-cluster-objects-applied
    - watch:
      - file: arc-bridge-config-managed
      - file: arkd-unit-managed
      - cmd: arc-bridge-package-installed
      - file: ark-kubeconfig-arkd
