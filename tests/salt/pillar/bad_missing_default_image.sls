# The example site whose VO alpha names no default image.
ark:
  vos:
    alpha:
      default_image: null
