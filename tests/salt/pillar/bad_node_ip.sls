# The example site with a node address that is not IPv4.
ark:
  node_ip: 10.213.0.300
