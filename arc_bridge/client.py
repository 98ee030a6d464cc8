"""The A-REX side of arkd: what submit-, scan- and cancel-kubernetes-job run.

Standard library only (see protocol.py). A failure prints one line and exits 1. The line goes to
stdout (ARC's LRMS contract) and to stderr, because A-REX 6.17 appends a script's stderr to the
job's error log, which is where a grid user reads it (`arccat -l`); it keeps only a generic
"Job submission to LRMS failed" as the job's error.
"""

import argparse
import json
import os
import sys
import time

from . import arcconf
from .protocol import DEFAULT_SOCKET, ProtocolError, call

SCAN_PERIOD = 30  # arkd reports completions itself; scan only catches what fell through.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arkd-client", description="Talk to arkd on behalf of A-REX.")
    parser.add_argument("--socket", default=default_socket(),
                        help="arkd's Unix socket (default: $ARKD_SOCKET, else 'socket' in [custom:kubernetes] "
                        f"of $ARC_CONFIG, else {DEFAULT_SOCKET})")
    sub = parser.add_subparsers(dest="op", required=True)
    submit = sub.add_parser("submit", help="hand a job to arkd and record its local id in the GRAMI")
    submit.add_argument("grami")
    submit.add_argument("script", help="the ARC job script built by submit_common.sh")
    cancel = sub.add_parser("cancel", help="ask arkd to kill a job")
    cancel.add_argument("grami")
    scan = sub.add_parser("scan", help="ask arkd to re-check jobs A-REX still waits for, then pause")
    scan.add_argument("controldir")
    scan.add_argument("--period", type=float, default=SCAN_PERIOD)
    sub.add_parser("info", help="print arkd's cluster and job summary as JSON")
    args = parser.parse_args(argv)

    try:
        if args.op == "submit":
            with open(args.grami, "rb") as f:
                grami = f.read()
            with open(args.script, "rb") as f:
                script = f.read()
            reply = call(args.socket, {"op": "submit", "grami": grami.decode("utf-8", "replace"),
                                       "script": script.decode("utf-8", "replace")})
            if reply.get("ok"):
                with open(args.grami, "a") as f:
                    f.write(f"joboption_jobid={reply['local_id']}\n")
        elif args.op == "cancel":
            with open(args.grami, "rb") as f:
                reply = call(args.socket, {"op": "cancel", "grami": f.read().decode("utf-8", "replace")})
        elif args.op == "scan":
            reply = call(args.socket, {"op": "scan", "controldir": args.controldir})
            if reply.get("ok"):
                time.sleep(args.period)
        else:
            reply = call(args.socket, {"op": "info"})
            if reply.get("ok"):
                print(json.dumps(reply["info"]))
    except OSError as e:
        return _fail(f"arkd is not reachable at {args.socket}: {e.strerror or e}")
    except ProtocolError as e:
        return _fail(f"arkd at {args.socket} answered with a broken reply: {e}")
    if not reply.get("ok"):
        return _fail(reply.get("error", "arkd refused the request without a reason"))
    return 0


def default_socket() -> str:
    if os.environ.get("ARKD_SOCKET"):
        return os.environ["ARKD_SOCKET"]
    return _custom_option(os.environ.get("ARC_CONFIG", ""), "socket") or DEFAULT_SOCKET


def _custom_option(arc_conf: str, key: str) -> str | None:
    """One key of arc.conf's [custom:kubernetes] block."""
    try:
        with open(arc_conf) as f:
            return arcconf.option(f.read(), "custom:kubernetes", key)
    except OSError:
        return None


def _fail(message: str) -> int:
    print(message)
    print(f"ERROR: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
