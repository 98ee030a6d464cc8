# The example site seen from a host that has only the registry role.
ark:
  roles: [registry]
