"""arkd's Unix socket. The kernel names the caller (SO_PEERCRED); requests never do."""

import logging
import os
import socket
import socketserver
import struct
from pathlib import Path
from typing import Any

from . import protocol
from .errors import BridgeError
from .service import Bridge, caller_from_credentials

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")


class _Handler(socketserver.BaseRequestHandler):
    server: "SocketServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(60)
        _pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        caller = caller_from_credentials(uid, gid)
        try:
            request = protocol.receive(sock)
            reply = {"ok": True, **self.server.dispatch(caller, request)}
        except (BridgeError, protocol.ProtocolError) as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:  # a bug or an API outage: tell the caller, keep serving others
            log.exception("request from %s failed", caller.user)
            reply = {"ok": False, "error": f"arkd internal error: {type(e).__name__}: {e}"[:500]}
        try:
            protocol.send(sock, reply)
        except OSError:
            pass


class SocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, bridge: Bridge):
        self.bridge = bridge
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        super().__init__(str(path), _Handler)
        # Any local account may connect; what it may do is decided per request from its uid.
        os.chmod(path, 0o666)

    def dispatch(self, caller: Any, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "submit":
            return {"local_id": self.bridge.submit(caller, _text(request, "grami"), _text(request, "script"))}
        if op == "cancel":
            self.bridge.cancel(caller, _text(request, "grami"))
            return {}
        if op == "scan":
            return {"lost": self.bridge.scan(caller)}
        if op == "info":
            return {"info": self.bridge.info(caller)}
        raise protocol.ProtocolError(f"unknown operation {str(op)[:40]!r}")


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise protocol.ProtocolError(f"request has no text field {key!r}")
    return value
