"""Fuzz arkd's socket protocol: whatever bytes a local account sends, arkd's connection handler
(arc_bridge.server) answers with one JSON object, and a refusal is one line. A reply that reports
an internal error means an exception escaped the request's own checks: that is a crash, as is any
exception out of the handler. The handler runs in process against the real Bridge, on a scratch
control directory and session root, with an in-memory stand-in for the Kubernetes API.

    python3 -m fuzz.protocol -atheris_runs=1000000
"""

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import atheris
import kubernetes  # noqa: F401 - imported (not instrumented) first: the harness never calls it
import yaml

with atheris.instrument_imports(include=["arc_bridge"]):
    from arc_bridge import protocol, server
    from arc_bridge.config import parse_config
    from arc_bridge.grami import quote
    from arc_bridge.service import Bridge
    from arc_bridge.translate import Caller

EXAMPLES = Path(__file__).resolve().parents[1] / "arc_bridge" / "examples"
GRID_ID = "fuzzjob0123456789"
USER = Caller(uid=20001, gid=20001, user="arkuser")


class MemoryKube:
    """Jobs kept in a dict: enough for submit, cancel, scan and info to run their whole course."""

    def __init__(self):
        self.jobs = {}
        self.requests = 0  # what info reports of arkd's API requests

    def create_job(self, manifest):
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.jobs:
            return None
        self.jobs[key] = json.loads(json.dumps(manifest))
        return self.jobs[key]

    def get_job(self, namespace, name):
        return self.jobs.get((namespace, name))

    def cancel_job(self, namespace, name):
        self.jobs.pop((namespace, name), None)

    delete_job = cancel_job

    def nodes(self):
        return []

    def get_node(self, name):
        return None

    def get_quota(self, namespace):
        return None


def scratch_site() -> tuple[Bridge, Path]:
    # libFuzzer ends the process without Python's clean-up: fuzz/run gives a directory it removes.
    root = Path(tempfile.mkdtemp(prefix="ark-fuzz-", dir=os.environ.get("ARK_FUZZ_SCRATCH")))
    raw = yaml.safe_load((EXAMPLES / "bridge.yaml").read_text())
    raw.update(controldir=str(root / "control"), session_roots=[str(root / "sessions")],
               socket=str(root / "arkd.sock"))
    raw["vos"]["alpha"]["users"] = [USER.user]
    (root / "control" / "processing").mkdir(parents=True)
    (root / "control" / "processing" / f"job.{GRID_ID}.status").write_text("SUBMIT")
    session = root / "sessions" / GRID_ID
    session.mkdir(parents=True)
    if os.getuid() == 0:
        os.chown(session, USER.uid, USER.gid)
    return Bridge(parse_config(raw), MemoryKube()), root


BRIDGE, ROOT = scratch_site()
SERVER = server.SocketServer(ROOT / "arkd.sock", BRIDGE)
# The callers by uid, without the password database (this machine has no arkuser).
CALLERS = {USER.uid: USER, 0: Caller(uid=0, gid=0, user="root")}
server.caller_from_credentials = lambda uid, gid: CALLERS[uid]
GRAMI_KEYS = ["gridid", "directory", "queue", "count", "memory", "walltime", "cputime", "priority",
              "runtime_0", "runtime_0_1", "numnodes", "jobname"]


def request_from(fdp: atheris.FuzzedDataProvider) -> bytes:
    """Raw bytes, or a well-formed request with fuzzed fields, so both the framing and each
    operation's own checks are reached."""
    if fdp.ConsumeBool():
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
    fields = {"gridid": GRID_ID, "directory": str(ROOT / "sessions" / GRID_ID), "queue": "default"}
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        fields[fdp.PickValueInList(GRAMI_KEYS)] = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 60))
    grami = "".join(f"joboption_{k}={quote(v)}\n" for k, v in fields.items())
    if fdp.ConsumeBool():
        grami = fdp.ConsumeUnicode(200)
    # Lone surrogates included: JSON can escape what UTF-8 cannot hold.
    request = {"op": fdp.PickValueInList(["submit", "cancel", "scan", "info", "", "nope"]),
               "grami": grami, "script": fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 200))}
    if fdp.ConsumeBool():
        del request[fdp.PickValueInList(sorted(request))]
    return json.dumps(request).encode() + b"\n"


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    caller = USER if fdp.ConsumeBool() else Caller(uid=0, gid=0, user="root")
    sent = request_from(fdp)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        ours.sendall(sent)
        ours.shutdown(socket.SHUT_WR)
        server._Handler(theirs, (caller.uid, caller.gid), SERVER)
        theirs.shutdown(socket.SHUT_WR)
        reply = protocol.receive(ours, protocol.MAX_REPLY)
    if not isinstance(reply.get("ok"), bool):
        raise AssertionError(f"reply without ok: {reply!r}")
    if not reply["ok"]:
        error = reply.get("error")
        if not isinstance(error, str) or not error or "\n" in error:
            raise AssertionError(f"a refusal a user would read is not one line: {error!r}")
        if error.startswith("arkd internal error"):
            raise AssertionError(f"an exception escaped the request's checks: {error}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
