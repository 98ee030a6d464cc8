{#- arkd on the CE. The cluster's objects for it (arc_bridge.deployed) are applied from the
    control plane, the one host with the cluster-admin credential. #}
include:
  - arc_bridge.installed
  - arc_bridge.configured
  - arc_bridge.running
