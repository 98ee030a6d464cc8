# The example site seen from a host that has only the worker role.
ark:
  roles: [worker]
