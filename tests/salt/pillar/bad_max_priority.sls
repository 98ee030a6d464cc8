# A VO priority cap outside ARC's 0-100.
ark:
  vos:
    alpha:
      max_priority: 101
