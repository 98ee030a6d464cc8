# The example site with a memory limit that has a space in it.
ark:
  vos:
    alpha:
      limits: {default_memory: 512 Mi}
