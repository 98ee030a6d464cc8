{#- A-REX (ARC CE) with lrms = kubernetes: packages, configuration, both services. #}
include:
  - arex.installed
  - arex.configured
  - arex.running
