# The example site with a queue open to a VO that does not exist.
ark:
  queues:
    default:
      vos: [alpha, gamma]
