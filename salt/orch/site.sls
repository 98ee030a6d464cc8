{#- The site's highstates in role order, run on the master:
      salt-run state.orchestrate orch.site
    Each group (pillar ark_orchestrate:groups, written by `ark init` for a site with a
    site.salt_master) runs in parallel once the group before it has succeeded: the API server
    before its nodes, the registry before the CE that pulls through it. #}
{%- set groups = salt['pillar.get']('ark_orchestrate:groups', []) %}
{%- if not groups %}
{{ raise('pillar ark_orchestrate:groups is empty: give the inventory a site.salt_master and run ark init again') }}
{%- endif %}
{%- for group in groups %}

ark-highstate-{{ group.role }}:
  salt.state:
    - tgt: {{ group.hosts | json }}
    - tgt_type: list
    - highstate: True
    - expect_minions: True
{%-   if not loop.first %}
    - require:
      - salt: ark-highstate-{{ loop.previtem.role }}
{%-   endif %}
{%- endfor %}
