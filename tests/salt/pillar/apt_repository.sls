# The example site taking its Debian packages from its own repository (ark bundle's debian/) only.
ark:
  apt:
    repository:
      url: http://10.213.0.1:8080/ark-files/debian/
      key: |
        -----BEGIN PGP PUBLIC KEY BLOCK-----

        mDMEawzaMBYJKwYBBAHaRw8BAQdAiqUWnDyrAosVDmMP6n6AJ14niWFRQ0DSqN+Y
        qGehCoq0K0FSSyByZW5kZXIgdGVzdCA8YXJrLXJlbmRlci10ZXN0QGxvY2FsaG9z
        dD6IkAQTFggAOBYhBPE8hjlsEa3V/qtmJDSljTAfRhkABQJrDNowAhsDBQsJCAcC
        BhUKCQgLAgQWAgMBAh4BAheAAAoJEDSljTAfRhkAtGoBANzoncXOjuuj2+D/jJzo
        zEarWi6gx7cgA2b+CODFCp/tAP9r2Uh/ZHkVfHTyIYMVdPbkvyFx6WbaV15KMTjg
        vtcYDw==
        =HQdq
        -----END PGP PUBLIC KEY BLOCK-----
