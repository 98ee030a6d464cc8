{#- Every host's first state file (see top.sls): rendering it validates pillar `ark`, so a bad
    pillar stops highstate even when the host's roles select no other formula. -#}
{%- from "ark/map.jinja" import ark with context %}

include:
  - ark.apt
  - ark.hosts

ark-site-pillar-valid:
  test.nop:
    - name: pillar ark is valid for roles {{ ark.roles | join(', ') }}
