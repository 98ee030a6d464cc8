{#- The site's highstates in role order, run on the master:
      salt-run state.orchestrate orch.site
    First the CA server (the master's own minion) gets the site CA and its signing policies, which
    every other host's certificates need. Then each group (pillar ark_orchestrate:groups, written
    by `ark init` for a site with a site.salt_master) runs in parallel once the group before it
    has succeeded: the API server before its nodes, the registry before the CE that pulls through
    it. #}
{%- set master = salt['pillar.get']('ark_orchestrate:master', '') %}
{%- set groups = salt['pillar.get']('ark_orchestrate:groups', []) %}
{%- if not (master and groups) %}
{{ raise('pillar ark_orchestrate:master or :groups is empty: give the inventory a site.salt_master and run ark init again') }}
{%- endif %}

ark-ca-server:
  salt.state:
    - tgt: {{ master | json }}
    - sls: kubernetes.signing
    - expect_minions: True
{%- for group in groups %}

ark-highstate-{{ group.role }}:
  salt.state:
    - tgt: {{ group.hosts | json }}
    - tgt_type: list
    - highstate: True
    - expect_minions: True
    - require:
      - salt: {{ 'ark-ca-server' if loop.first else 'ark-highstate-' ~ loop.previtem.role }}
{%- endfor %}
