# The example site with a package repository whose key is a file name, not the key itself.
ark:
  apt:
    repository:
      url: http://10.213.0.1:8080/ark-files/debian
      key: /srv/bundle/ark-bundle-key.asc
