# A wheel listed with something other than its sha256: pip could not check it.
ark:
  wheels:
    bridge:
      arc_bridge-0.1.0-py3-none-any.whl: "md5:0123456789abcdef"
