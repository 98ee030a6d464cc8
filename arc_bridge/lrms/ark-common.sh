# Shared by ARK's LRMS scripts: where arkd listens and how to reach its client.
# The client is stdlib-only Python run with Debian's interpreter: these scripts run as the mapped
# grid user, who cannot read a virtualenv under /root.

ark_socket () {
  local s
  s=$("${pkglibexecdir}/arcconfig-parser" --load -r "${ARC_CONFIG}" -b custom:kubernetes -o socket 2>/dev/null)
  printf '%s' "${s:-${ARKD_SOCKET:-/run/arkd/arkd.sock}}"
}

ark_client () {
  PYTHONPATH="${pkgdatadir}/ark" /usr/bin/python3 -m arc_bridge.client --socket "$(ark_socket)" "$@"
}
