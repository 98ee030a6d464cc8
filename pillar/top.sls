# Which pillar files each minion gets. The example is one all-in-one host. A site with a host
# per role keeps what all hosts share in site.sls (with the site CA under ark:pki:ca) and gives
# each host a file of its own with roles, node_ip, kubernetes:node_name and, on workers,
# kubernetes:pod_cidr. Salt merges the files in order, the later key by key over the earlier:
#   base:
#     '*':
#       - site
#     'ark-cp':
#       - hosts.ark-cp      # roles: [control-plane, registry], node_ip: ...
#     'ark-ce':
#       - hosts.ark-ce      # roles: [ce], node_ip: ...
#     'ark-wn1':
#       - hosts.ark-wn1     # roles: [worker], node_ip: ..., kubernetes: {pod_cidr: ...}
# The split site of tests/salt/test_site.py (localsite/saltsite.py) is laid out exactly so.
base:
  '*':
    - site
