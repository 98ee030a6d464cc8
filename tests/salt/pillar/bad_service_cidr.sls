# The example site with a service range that is an address, not a range.
ark:
  kubernetes:
    service_cidr: 10.215.0.1
