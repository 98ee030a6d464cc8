include:
  - arc_bridge.installed
  - arc_bridge.configured
  - arc_bridge.running
  - arc_bridge.deployed
