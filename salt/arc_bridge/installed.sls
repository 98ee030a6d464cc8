{%- from "ark/map.jinja" import ark with context %}
{%- set venv = ark.bridge.venv %}
{%- set wheel_url = ark.files_repo ~ '/' ~ ark.bridge.wheel %}
{%- set cached_wheel = '/var/cache/ark/files/' ~ ark.bridge.wheel %}
{%- set stamp = venv ~ '/arc-bridge-wheel.sha256' %}

arc-bridge-python-installed:
  pkg.installed:
    - pkgs:
      - python3-venv

arc-bridge-wheel-downloaded:
  file.managed:
    - name: {{ cached_wheel }}
    - source: {{ wheel_url }}
    - source_hash: {{ wheel_url }}.sha256
    - makedirs: True

# Debian's own interpreter, which apt keeps: a python3 earlier in PATH (a pyenv build under /root,
# say) may be private to one user or go away under the venv.
arc-bridge-venv-created:
  cmd.run:
    - name: /usr/bin/python3 -m venv {{ venv }}
    - creates: {{ venv }}/bin/python
    - require:
      - pkg: arc-bridge-python-installed

# Dependencies come from the same mirror directory (--no-index): the site has no PyPI. The second
# pip call replaces the package even when a rebuilt wheel keeps its version number. The LRMS
# scripts run as mapped grid users with /usr/bin/python3, so they are copied out of the venv next
# to ARC's own backends. The stamp, written last, records which wheel all this was done for: a
# new wheel or a step that failed last time makes the next highstate do it again.
arc-bridge-package-installed:
  cmd.run:
    - name: >-
        {{ venv }}/bin/pip install --quiet --no-index --find-links {{ ark.files_repo }}/
        {%- if ark.files_repo.startswith('http://') %} --trusted-host {{ ark.files_repo.split('/')[2].split(':')[0] }}{% endif %}
        {{ cached_wheel }}
        && {{ venv }}/bin/pip install --quiet --no-index --no-deps --force-reinstall {{ cached_wheel }}
        && {{ venv }}/bin/arc-bridge install-lrms --dest /usr/share/arc
        && sha256sum {{ cached_wheel }} > {{ stamp }}
    - unless: sha256sum --check --status {{ stamp }}
    - require:
      - file: arc-bridge-wheel-downloaded
      - cmd: arc-bridge-venv-created
