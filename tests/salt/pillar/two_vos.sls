# Two VOs with RTE images, two queues, a site's own priority classes, full quotas and limits:
# every optional shape the example site leaves out.
ark:
  registry:
    push_users:
      beta:
        name: beta-manager
        password: beta-secret
  vos:
    alpha:
      images: [base:1, tools:2]
      runtime_environments:
        APPS/ALPHA/TOOLS-2: tools:2
      quota: {cpu: 500m, memory: 1536Mi, pods: 20}
      limits: {default_cpu: 250m, default_memory: 256Mi, max_cpu: "2", max_memory: 4Gi}
    beta:
      users: {bob: 20002, carol: 20003}
      images: [base:1]
      default_image: base:1
      dns: [/O=Grid/CN=Bob]
      # Its queue "long" sets no memory or CPU limit: no LimitRange defaults either.
      limits: {default_cpu: null, default_memory: null}
  queues:
    default:
      vos: [alpha, beta]
    long:
      vos: [beta]
      node_selector: {ark.nordugrid.org/queue: long}
      memory_limit_factor: null
      cpu_limit: request_only
      scratch_mb: 2048
  priority_classes:
    ark-normal: 0
    ark-urgent: 90
  # Two names for one address: one /etc/hosts line holds both.
  hosts:
    ark-node-1: 10.213.0.2
    registry.example.org: 10.213.0.2
