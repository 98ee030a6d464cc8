registry-packages-installed:
  pkg.installed:
    - pkgs:
      - docker-registry
      - nginx  # TLS, accounts and who may push where, in front of the registry
      - apache2-utils  # htpasswd, for the bcrypt users
