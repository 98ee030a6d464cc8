# Shared by ARK's LRMS scripts, sourced after ARC's lrms_common.sh.

# The arkd client: stdlib-only Python run with Debian's interpreter, because these scripts run as
# the mapped grid user, who cannot read a virtualenv under /root. It finds arkd's socket in
# [custom:kubernetes] socket of $ARC_CONFIG (default /run/arkd/arkd.sock). -S and -P: neither
# site-packages nor the working directory (the user's session, when A-REX runs this) can put
# modules of the user's choosing on the path.
ark_client () {
  ARC_CONFIG="$ARC_CONFIG" PYTHONPATH="${pkgdatadir}/ark" /usr/bin/python3 -S -P -m arc_bridge.client "$@"
}

# ARC's parse_arc_conf starts arcconfig-parser once per block (common, arex, lrms, queue), and
# those four Python start-ups were most of a submission's wall time. This does the same in one
# run: the same options, and arcconfig-parser gives the first block named precedence, so the
# order below reproduces "queue over lrms over arex over common".
parse_arc_conf () {
  local opts="enable_perflog_reporting perflogdir hostname controldir scratchdir shared_filesystem
    shared_scratch runtimedir gnu_time nodename defaultmemory benchmark movetool $lrms_options $queue_options"
  local args=() opt
  [ -n "$joboption_queue" ] && args+=(-b "queue:$joboption_queue")
  args+=(-b lrms -b arex -b common)
  for opt in $opts; do args+=(-f "$opt"); done
  eval "$("$pkglibexecdir/arcconfig-parser" --load -r "$ARC_CONFIG" --export bash "${args[@]}")"
}
