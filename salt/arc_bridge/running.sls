{%- from "ark/map.jinja" import ark with context %}

include:
  - arc_bridge.configured
  - arex.configured
  - kubernetes.kubeconfigs
  - kubernetes.binaries  # kubectl, for an admin (and ark check) to ask the cluster as arkd
{%- if 'control-plane' in ark.roles %}
  - arc_bridge.deployed
{%- endif %}

{#- arkd writes only A-REX's control directory and the session roots (results, .diag); the
    rest of the system is read-only to it. /home stays readable only where a root lies under it. #}
{%- set writable = [ark.bridge_config.controldir] + ark.bridge_config.session_roots %}
{%- set under_home = writable | select('match', '^/(home|root|run/user)(/|$)') | list %}
arkd-unit-managed:
  file.managed:
    - name: /etc/systemd/system/arkd.service
    - contents: |
        [Unit]
        Description=ARK bridge daemon: A-REX jobs as Kubernetes Jobs
        After=network-online.target
        Wants=network-online.target

        [Service]
        ExecStart={{ ark.bridge.venv }}/bin/arkd --config /etc/ark/bridge.yaml
        # The socket's directory; any local user may connect, arkd identifies callers by uid.
        RuntimeDirectory={{ ark.bridge.socket.split('/')[2] }}
        RuntimeDirectoryMode=0755
        StateDirectory=arkd
        Restart=on-failure
        RestartSec=5
        # Room for the connection cap (arc_bridge.server) and the API server's connections.
        LimitNOFILE=4096
        # Root, but only what handing files to job users needs: reading and appending to their
        # files (DAC override) and giving them the .diag and .comment it creates (chown).
        CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER
        NoNewPrivileges=yes
        ProtectSystem=strict
        ReadWritePaths={{ writable | join(' ') }}
        ProtectHome={{ 'read-only' if under_home else 'yes' }}
        PrivateTmp=yes
        PrivateDevices=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectControlGroups=yes
        RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
        RestrictNamespaces=yes
        RestrictSUIDSGID=yes
        LockPersonality=yes
        SystemCallArchitectures=native

        [Install]
        WantedBy=multi-user.target

arkd-service-running:
  service.running:
    - name: arkd
    - enable: True
    # arkd lists Jobs and pods as soon as it starts: its RBAC must be there first (on a site of
    # several hosts, the control plane's highstate comes first). Its unit makes the control
    # directory and session root writable, so they must exist.
    - require:
{%- if 'control-plane' in ark.roles %}
      - cmd: arc-bridge-cluster-objects-applied
{%- endif %}
      - file: ark-arex-controldir-present
      - file: ark-arex-sessiondir-present
    - watch:
      - file: arc-bridge-config-managed
      - file: arc-bridge-registry-pull-managed
      - file: arkd-unit-managed
      - cmd: arc-bridge-package-installed
      - file: ark-kubeconfig-arkd
