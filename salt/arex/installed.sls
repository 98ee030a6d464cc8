{#- openssl and procps are used by the A-REX start scripts but not declared by the packages. #}
ark-arex-packages-installed:
  pkg.installed:
    - pkgs:
      - nordugrid-arc-arex
      - nordugrid-arc-plugins-arcrest
      - nordugrid-arc-arcctl
      - nordugrid-arc-plugins-needed
      - openssl
      - procps
