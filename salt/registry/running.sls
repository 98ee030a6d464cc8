include:
  - registry.configured

registry-service-running:
  service.running:
    - name: docker-registry
    - enable: True
    - watch:
      - file: registry-config-managed
      - cmd: registry-service-dropin-loaded
    - require:
      - file: registry-storage-present

{#- nginx's reload only signals the running master, which keeps its old configuration when the
    new one is bad and reports nothing; the test makes highstate fail instead. #}
registry-proxy-config-valid:
  cmd.run:
    - name: nginx -t -q
    - onchanges:
      - file: registry-proxy-configured
      - file: registry-proxy-default-site-absent
      - x509: ark-pki-registry-cert

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
      - group: registry-socket-group-present  # new workers pick up the group
    - require:
      - cmd: registry-proxy-config-valid
      - service: registry-service-running
      - file: registry-users-not-in-pillar-absent
