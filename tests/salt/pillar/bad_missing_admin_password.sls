# The example site without the registry admin account's password.
ark:
  registry:
    admin_user:
      password: ""
