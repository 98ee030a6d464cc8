ark:
  bridge:
    session_volume:
      type: nfs
