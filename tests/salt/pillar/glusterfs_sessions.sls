# The session directory as the GlusterFS volume ARK serves from the CE (salt/sessions).
ark:
  bridge:
    session_volume:
      type: glusterfs
      glusterfs:
        server: 10.0.0.13
