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

        [Install]
        WantedBy=multi-user.target
