{%- from "ark/map.jinja" import ark with context %}

registry-packages-installed:
  pkg.installed:
    - pkgs:
      - docker-registry
      - apache2-utils  # htpasswd, for the bcrypt users
