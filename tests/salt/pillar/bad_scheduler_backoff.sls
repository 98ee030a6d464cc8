# The example site with a scheduler back-off of zero seconds (Kubernetes takes 1 at least).
ark:
  kubernetes:
    scheduler_backoff_seconds: 0
