# The example site with a package repository URL that has no scheme.
ark:
  apt:
    repository:
      url: 10.213.0.1:8080/ark-files/debian
      key: |
        -----BEGIN PGP PUBLIC KEY BLOCK-----
        mDMEawzaMBYJKwYBBAHaRw8BAQdAiqUWnDyrAosVDmMP6n6AJ14niWFRQ0DSqN+Y
        -----END PGP PUBLIC KEY BLOCK-----
