# The example site with a CPU quota that is not a quantity.
ark:
  vos:
    alpha:
      quota: {cpu: four}
