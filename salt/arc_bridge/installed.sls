{%- from "ark/map.jinja" import ark with context %}
{%- set venv = ark.bridge.venv %}
{%- set requirements = venv ~ '-requirements.txt' %}
{%- set stamp = venv ~ '/arc-bridge-requirements.txt' %}

arc-bridge-python-installed:
  pkg.installed:
    - pkgs:
      - python3-venv

# Debian's own interpreter, which apt keeps: a python3 earlier in PATH (a pyenv build under /root,
# say) may be private to one user or go away under the venv.
arc-bridge-venv-created:
  cmd.run:
    - name: /usr/bin/python3 -m venv {{ venv }}
    - creates: {{ venv }}/bin/python
    - require:
      - pkg: arc-bridge-python-installed

# arc-bridge and every wheel it installs with, by URL from the files repository, each with the
# sha256 that pillar ark:wheels:bridge gives (ark bundle's pillar.yaml): pip refuses a wheel that
# does not match, so the plain-HTTP server cannot change what is installed.
arc-bridge-requirements-managed:
  file.managed:
    - name: {{ requirements }}
    - contents: |
{%- for wheel, sha256 in ark.wheels.bridge | dictsort %}
        {{ ark.files_repo }}/{{ wheel }} --hash=sha256:{{ sha256 }}
{%- endfor %}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: True

# --force-reinstall: a rebuilt wheel may keep its version number. The LRMS scripts run as mapped
# grid users with /usr/bin/python3, so on the CE they are copied out of the venv next to ARC's own
# backends (the control plane has the package only to render the cluster's objects).
# The stamp, written last, records which wheels all this was done for: new wheels or a step that
# failed last time make the next highstate do it again.
arc-bridge-package-installed:
  cmd.run:
    - name: >-
        {{ venv }}/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes
        {%- if ark.files_repo.startswith('http://') %} --trusted-host {{ ark.files_repo.split('/')[2].split(':')[0] }}{% endif %}
        --force-reinstall -r {{ requirements }}
{%- if 'ce' in ark.roles %}
        && {{ venv }}/bin/arc-bridge install-lrms --dest /usr/share/arc
{%- endif %}
        && cp {{ requirements }} {{ stamp }}
    - unless: cmp -s {{ requirements }} {{ stamp }}
    - require:
      - file: arc-bridge-requirements-managed
      - cmd: arc-bridge-venv-created
