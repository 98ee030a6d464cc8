{#- The Kubernetes binaries this host's roles run, from the site's files repository, each
    checked against the sha256 pinned for ark:kubernetes:version (ark/versions.yaml + pillar). #}
{%- from "ark/map.jinja" import ark with context %}
{%- from "kubernetes/map.jinja" import k8s with context %}

{%- for name in k8s.binaries %}

ark-{{ name }}-installed:
  file.managed:
    - name: {{ k8s.bin_dir }}/{{ name }}
    - source: {{ ark.files_repo }}/kubernetes/{{ ark.kubernetes.version }}/{{ name }}
    - source_hash: sha256={{ k8s.checksums[name] }}
    - user: root
    - group: root
    - mode: '0755'
{%- endfor %}
