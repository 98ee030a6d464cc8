# A worker host of a split site whose pillar does not say where the API server is.
ark:
  roles: [worker]
  kubernetes:
    apiserver:
      address: ""
