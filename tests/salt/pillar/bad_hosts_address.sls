# The example site with an /etc/hosts entry whose address is a name.
ark:
  hosts:
    ark-node-1: ark-node-1.example.org
