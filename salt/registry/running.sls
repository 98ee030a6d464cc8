{%- from "ark/map.jinja" import ark with context %}

include:
  - registry.configured

registry-service-running:
  service.running:
    - name: docker-registry
    - enable: True
    - watch:
      - file: registry-config-managed
    - require:
      - file: registry-storage-present

{#- Accounts are read per request, so a changed account needs no reload. #}
registry-proxy-running:
  service.running:
    - name: nginx
    - enable: True
    - reload: True
    - watch:
      - file: registry-proxy-configured
      - file: registry-proxy-default-site-absent
      - x509: ark-pki-registry-cert
    - require:
      - service: registry-service-running
      - file: registry-users-not-in-pillar-absent
