# The example site whose VO alpha defaults to an image outside its allowlist.
ark:
  vos:
    alpha:
      default_image: other:3
