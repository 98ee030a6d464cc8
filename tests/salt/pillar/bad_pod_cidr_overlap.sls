# The example site whose pod range lies inside its service range.
ark:
  kubernetes:
    pod_cidr: 10.215.0.128/25
