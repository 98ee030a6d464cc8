{#- The session directory shared by the CE and the workers, when ARK serves it
    (pillar ark:bridge:session_volume:type glusterfs): the CE serves a GlusterFS volume and mounts
    it at the session directory; the workers' kubelets mount it for pods through the claims the
    control plane makes (arc_bridge.deployed). With hostPath or the admin's own claim there is
    nothing to do here. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- from "sessions/map.jinja" import sessions with context %}
{%- set parts = [] %}
{%- if sessions.enabled and 'ce' in ark.roles %}{% do parts.extend(['sessions.served', 'sessions.mounted']) %}{% endif %}
{%- if sessions.enabled and 'worker' in ark.roles %}{% do parts.append('sessions.client') %}{% endif %}
{%- if parts %}
include: {{ parts | json }}
{%- endif %}
