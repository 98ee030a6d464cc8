{#- The CE serves the session directory as a GlusterFS volume of one brick. Only clients with a
    certificate of the site CA with the CN of sessions/map.jinja (the CE and the workers, kubernetes.pki)
    may use it: the volume's I/O is TLS (client.ssl, server.ssl) and auth.ssl-allow names that CN,
    because pods can reach the CE's address and a grid job could otherwise speak GlusterFS to it.
    Options are set before the first start; the volume is never stopped or removed here. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- from "sessions/map.jinja" import sessions with context %}
{%- if sessions.enabled %}
{%- set gluster = ark.bridge.session_volume.glusterfs %}
{%- set cli = 'gluster --mode=script' %}
include:
  - kubernetes.pki

{#- Without recommends: nfs-common would bring rpcbind, a UDP listener the site does not need. #}
ark-sessions-server-installed:
  pkg.installed:
    - name: glusterfs-server
    - install_recommends: False

ark-sessions-glusterd-running:
  service.running:
    - name: glusterd
    - enable: True
    - require:
      - pkg: ark-sessions-server-installed

ark-sessions-brick-present:
  file.directory:
    - name: {{ gluster.brick }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

ark-sessions-volume-created:
  cmd.run:
    - name: {{ cli }} volume create {{ gluster.volume }} {{ gluster.server }}:{{ gluster.brick }} force
    - unless: {{ cli }} volume info {{ gluster.volume }}
    - require:
      - service: ark-sessions-glusterd-running
      - file: ark-sessions-brick-present

{%- for option, value in sessions.volume_options | dictsort %}

ark-sessions-volume-{{ option }}:
  cmd.run:
    - name: {{ cli }} volume set {{ gluster.volume }} {{ option }} {{ value }}
    - unless: {{ cli }} volume get {{ gluster.volume }} {{ option }} | grep -qE '^{{ option | regex_escape }} +{{ value | regex_escape }} *$'
    - require:
      - cmd: ark-sessions-volume-created
    - require_in:
      - cmd: ark-sessions-volume-started
{%- endfor %}

ark-sessions-volume-started:
  cmd.run:
    - name: {{ cli }} volume start {{ gluster.volume }}
    - unless: {{ (cli ~ ' volume info ' ~ gluster.volume ~ " | grep -qx 'Status: Started'") | json }}
    - require:
      - x509: ark-pki-sessions-cert
{%- endif %}
