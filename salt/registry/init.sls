include:
  - registry.installed
  - registry.configured
  - registry.running
  - registry.gc
