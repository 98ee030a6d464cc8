{#- Where apt gets Debian packages on a site with no internet: pillar ark:apt (validated in
    ark/map.jinja). Runs before every package state (order 1), so the first `apt-get update`
    already uses it.

    - proxy: the site's HTTP proxy to a Debian mirror (apt-cacher-ng or similar), in
      /etc/apt/apt.conf.d/01ark-proxy; empty removes the setting.
    - repository {url, key}: the site's own package repository (`ark bundle`'s debian/, served
      with the files repository) as the host's ONLY package source. apt is pointed away from the
      host's own sources (Dir::Etc::sourcelist/sourceparts in /etc/apt/apt.conf.d/01ark-sources):
      /etc/apt/sources.list and sources.list.d/ stay as they are, unread, so a host with no route
      out never fails `apt-get update` on them, and removing the pillar setting gives the host its
      own sources back. The price: a source an admin adds to sources.list.d is ignored too while
      ARK's repository is set (add packages to the bundle instead). Both may be set: apt then
      fetches the repository through the proxy.
    When the sources change, the lists are refreshed at once, and a repository that cannot be
    fetched or is not signed by the key fails that state, naming the cause. -#}
{%- from "ark/map.jinja" import ark with context %}
{%- set proxy = ark.apt.proxy %}
{%- set repository = ark.apt.repository %}
{%- set keyring = '/etc/apt/keyrings/ark-site.asc' %}
{%- set sources = '/etc/apt/ark/ark-site.sources' %}

{%- if proxy %}
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

{%- if repository.url %}

ark-apt-repository-key:
  file.managed:
    - name: {{ keyring }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - order: 1
    - contents: {{ repository.key | json }}

ark-apt-repository-source:
  file.managed:
    - name: {{ sources }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - order: 1
    - contents: |
        # Managed by Salt (ARK, salt/ark/apt.sls) from pillar ark:apt:repository: the site's
        # package repository (ark bundle), a flat one, signed by the key in {{ keyring }}.
        Types: deb
        URIs: {{ repository.url }}/
        Suites: ./
        Signed-By: {{ keyring }}

ark-apt-sources-configured:
  file.managed:
    - name: /etc/apt/apt.conf.d/01ark-sources
    - user: root
    - group: root
    - mode: '0644'
    - order: 1
    - contents: |
        // Managed by Salt (ARK, salt/ark/apt.sls) from pillar ark:apt:repository.
        // The site's package repository is this host's only package source: apt reads
        // {{ sources }} instead of /etc/apt/sources.list and /etc/apt/sources.list.d/,
        // which stay as they were and come back when this file goes.
        Dir::Etc::sourcelist "{{ sources }}";
        Dir::Etc::sourceparts "/dev/null";
    - require:
      - file: ark-apt-repository-key
      - file: ark-apt-repository-source
{%- else %}

ark-apt-sources-configured:
  file.absent:
    - name: /etc/apt/apt.conf.d/01ark-sources
    - order: 1

ark-apt-repository-source:
  file.absent:
    - name: /etc/apt/ark
    - order: 1

ark-apt-repository-key:
  file.absent:
    - name: {{ keyring }}
    - order: 1
{%- endif %}

{#- Salt refreshes the lists once per run at its first package state, which may not come after
    this change; and an update that fails on any source must fail here (APT::Update::Error-Mode),
    not pass with a warning and leave the old lists. #}
ark-apt-lists-updated:
  cmd.run:
    - name: apt-get -q -o APT::Update::Error-Mode=any update
    - order: 1
    - onchanges:
      - file: ark-apt-sources-configured
      - file: ark-apt-repository-source
      - file: ark-apt-repository-key
