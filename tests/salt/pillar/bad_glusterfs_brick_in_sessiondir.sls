ark:
  bridge:
    session_volume:
      type: glusterfs
      glusterfs:
        brick: /var/spool/arc/sessiondir/brick
