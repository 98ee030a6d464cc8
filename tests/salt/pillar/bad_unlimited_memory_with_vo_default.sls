# A queue without memory limits for a VO whose LimitRange gives every container one.
ark:
  queues:
    default:
      memory_limit_factor: null
