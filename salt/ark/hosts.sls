{#- Names a site without DNS resolves through /etc/hosts (pillar ark:hosts). A-REX's package
    needs the host's own name to resolve when it installs, so this runs before every package
    state (order 1). One state per address, with all its names: host.only makes the address's
    line hold exactly these. An entry removed from pillar stays in the file. -#}
{%- from "ark/map.jinja" import ark with context %}

{%- set names = {} %}
{%- for name, address in ark.hosts | dictsort %}
{%-   do names.setdefault(address, []).append(name) %}
{%- endfor %}
{%- for address, hostnames in names | dictsort %}
ark-hosts-{{ address }}-present:
  host.only:
    - name: {{ address }}
    - hostnames: {{ hostnames | json }}
    - order: 1
{%- endfor %}
