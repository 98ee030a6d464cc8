{#- Names a site without DNS resolves through /etc/hosts (pillar ark:hosts). A-REX's package
    needs the host's own name to resolve when it installs, so this runs before every package
    state (order 1). An entry removed from pillar stays in the file. -#}
{%- from "ark/map.jinja" import ark with context %}

{%- for name, address in ark.hosts | dictsort %}
ark-hosts-{{ name }}-present:
  host.only:
    - name: {{ address }}
    - hostnames: [{{ name }}]
    - order: 1
{%- endfor %}
