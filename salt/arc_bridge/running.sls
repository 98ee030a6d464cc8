include:
  - arc_bridge.configured
  - kubernetes.kubeconfigs

arkd-service-running:
  service.running:
    - name: arkd
    - enable: True
    - watch:
      - file: arc-bridge-config-managed
      - file: arkd-unit-managed
      - cmd: arc-bridge-package-installed
      - file: ark-kubeconfig-arkd
