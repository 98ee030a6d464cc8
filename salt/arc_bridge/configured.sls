{%- from "ark/map.jinja" import ark with context %}

include:
  - arc_bridge.installed

# check_cmd runs the new file through arkd's own validation before it replaces the old one, so a
# config arkd would refuse fails here, naming the key, instead of crash-looping the service.
arc-bridge-config-managed:
  file.managed:
    - name: /etc/ark/bridge.yaml
    - contents: {{ ("# Managed by Salt from pillar ark (salt/ark/map.jinja: bridge_config).\n" ~ (ark.bridge_config | yaml(False))) | json }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: True
    - check_cmd: {{ ark.bridge.venv }}/bin/arc-bridge manifests --config
    - require:
      - cmd: arc-bridge-package-installed

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
