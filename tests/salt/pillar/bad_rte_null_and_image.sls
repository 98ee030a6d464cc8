# ENV/PROXY is ARC's own RTE (null) for VO alpha in the example site; VO beta maps it to an image.
ark:
  registry:
    push_users:
      beta: {name: beta-manager, password: beta-secret}
  vos:
    beta:
      users: {bob: 20002}
      images: [base:1]
      default_image: base:1
      runtime_environments:
        ENV/PROXY: base:1
      dns: [/O=Grid/CN=Bob]
