# The example site seen from a host that has only the ce role.
ark:
  roles: [ce]
