# The example site with an apt proxy that is not an HTTP URL.
ark:
  apt:
    proxy: 10.213.0.1:3142
