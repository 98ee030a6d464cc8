{#- A site with no internet reaches Debian's archive through its own proxy (apt-cacher-ng or
    similar): pillar ark:apt:proxy. Runs before every package state (order 1), so the first
    `apt-get update` already goes through it; an empty proxy removes the setting. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- set proxy = ark.apt.proxy %}

{%- if proxy %}
{%-   if (proxy | string | regex_match('^https?://[^\\s"]+$')) is none %}
{{ raise('pillar ark:apt:proxy: ' ~ proxy ~ ' is not an http:// or https:// URL') }}
{%-   endif %}
ark-apt-proxy-configured:
  file.managed:
    - name: /etc/apt/apt.conf.d/01ark-proxy
    - user: root
    - group: root
    - mode: '0644'
    - order: 1
    - contents: |
        // Managed by Salt (ARK, salt/ark/apt.sls) from pillar ark:apt:proxy.
        Acquire::http::Proxy "{{ proxy }}";
{%- else %}
ark-apt-proxy-configured:
  file.absent:
    - name: /etc/apt/apt.conf.d/01ark-proxy
    - order: 1
{%- endif %}
