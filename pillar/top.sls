# Which pillar files each minion gets. One all-in-one host here; a site with one host per role
# targets a file per host (or per role) instead, each holding the same `ark` tree.
base:
  '*':
    - site
