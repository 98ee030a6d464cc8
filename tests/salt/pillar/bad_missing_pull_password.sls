# The example site without the registry pull account's password.
ark:
  registry:
    pull_user:
      password: null
