{#- The CE mounts the session volume at the session directory, as a systemd mount unit (a boot
    mounts it once glusterd is up), and A-REX (both services) starts only with it there: otherwise it would write
    sessions into the directory under the mount, where no pod sees them. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- from "sessions/map.jinja" import sessions with context %}
{%- if sessions.enabled %}
{%- set gluster = ark.bridge.session_volume.glusterfs %}
{%- set sessiondir = ark.arex.sessiondir %}
{%- set unit = salt['cmd.run']('systemd-escape --path --suffix=mount ' ~ sessiondir | quote) %}
include:
  - sessions.served

ark-sessions-mount-unit:
  file.managed:
    - name: /etc/systemd/system/{{ unit }}
    - user: root
    - group: root
    - mode: '0644'
    - contents: |
        # Managed by Salt (ARK, salt/sessions/mounted.sls): the CE's session directory is the
        # GlusterFS volume it serves to the workers.
        [Unit]
        Description=ARK session directory (GlusterFS volume {{ gluster.volume }})
        Requires=glusterd.service
        After=glusterd.service network-online.target
        Wants=network-online.target

        [Mount]
        What={{ gluster.server }}:/{{ gluster.volume }}
        Where={{ sessiondir }}
        Type=glusterfs
        Options=_netdev

        [Install]
        WantedBy=remote-fs.target

ark-sessions-mounted:
  service.running:
    - name: {{ unit }}
    - enable: True
    - require:
      - cmd: ark-sessions-volume-started
    - watch:
      - file: ark-sessions-mount-unit

{%- for service in ['arc-arex', 'arc-arex-ws'] %}

ark-sessions-{{ service }}-waits-for-mount:
  file.managed:
    - name: /etc/systemd/system/{{ service }}.service.d/ark-sessions.conf
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (ARK, salt/sessions/mounted.sls).
        [Unit]
        RequiresMountsFor={{ sessiondir }}
{%- endfor %}
{%- endif %}
