{#- A worker: the kubelet mounts the session volume for pods with mount.glusterfs, presenting the
    host's sessions certificate (kubernetes.pki), the only kind the volume admits. -#}
{%- from "sessions/map.jinja" import sessions with context %}
{%- if sessions.enabled %}
include:
  - kubernetes.pki

ark-sessions-client-installed:
  pkg.installed:
    - name: glusterfs-client
{%- endif %}
