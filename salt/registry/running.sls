{%- from "ark/map.jinja" import ark with context %}

include:
  - registry.configured

registry-service-running:
  service.running:
    - name: docker-registry
    - enable: True
    - watch:
      - file: registry-config-managed
      - file: registry-tls-cert-installed
      - file: registry-tls-key-installed
    - require:
      - file: registry-users-not-in-pillar-absent
      - file: registry-storage-present
