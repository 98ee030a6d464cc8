# The example site seen from a host that has only the control-plane role.
ark:
  roles: [control-plane]
