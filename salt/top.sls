{#- States by role: pillar ark:roles says what this host is, so one host can hold every role or
    each role its own host. `ark` comes first for every host: it validates the pillar (a render
    error of any listed file stops highstate before any state runs), which also reports a pillar
    whose roles select nothing else. The roles are read raw here because a render error in the
    top file would only surface as "no top file matches". -#}
{%- set roles = salt['pillar.get']('ark:roles', []) %}
base:
  '*':
    - ark
{%- if 'control-plane' in roles %}
    - kubernetes.control_plane
    - arc_bridge.deployed
{%- endif %}
{%- if 'worker' in roles %}
    - kubernetes.node
{%- endif %}
{%- if 'worker' in roles or 'ce' in roles %}
    - sessions
{%- endif %}
{%- if 'registry' in roles %}
    - registry
{%- endif %}
{%- if 'ce' in roles %}
    - arex
    - arc_bridge
{%- endif %}
