# The example site with a package repository and no key to check it with.
ark:
  apt:
    repository:
      url: http://10.213.0.1:8080/ark-files/debian
