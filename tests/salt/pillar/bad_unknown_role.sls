# The example site with a role ARK does not have.
ark:
  roles: [ce, compute]
