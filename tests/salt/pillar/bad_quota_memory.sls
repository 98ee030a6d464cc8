# The example site with a quota in the wrong unit (GB, not Gi or G).
ark:
  vos:
    alpha:
      quota: {memory: 8GB}
