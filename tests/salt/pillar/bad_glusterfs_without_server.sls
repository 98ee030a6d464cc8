# A control-plane host told to make the session claims of ARK's GlusterFS volume, but not where
# the CE serving it is.
ark:
  roles: [control-plane]
  bridge:
    session_volume:
      type: glusterfs
