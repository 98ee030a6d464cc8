"""arkd's Unix socket. The kernel names the caller (SO_PEERCRED); requests never do.

Any local account may connect, so no account may starve the others: connections in flight are
capped in all and per uid (root, which is A-REX's scan and the infoprovider, has a reserve of its
own), a whole request must arrive within a deadline, and a caller over its share gets a "busy"
reply at once, which the client answers by retrying after a pause.
"""

import errno
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from . import protocol
from .errors import BridgeError
from .service import Bridge, caller_from_credentials

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")
MAX_CONNECTIONS = 128  # of all non-root callers together
MAX_PER_UID = 16
ROOT_CONNECTIONS = 32
REPLY_SECONDS = 10.0
# How long accept pauses when arkd is out of file descriptors, instead of spinning on the socket.
EMFILE_PAUSE = 0.1


def peer_uid_gid(sock: socket.socket) -> tuple[int, int]:
    _pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return uid, gid


class ConnectionBudget:
    """Connections in flight, per uid; `take` says why a new one is refused, or None."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_uid: int = MAX_PER_UID, root: int = ROOT_CONNECTIONS):
        self.total, self.per_uid, self.root = total, per_uid, root
        self.active: Counter[int] = Counter()
        self._lock = threading.Lock()

    def take(self, uid: int) -> str | None:
        with self._lock:
            if uid == 0:
                if self.active[0] >= self.root:
                    return f"{self.root} requests of root in progress"
            elif self.active[uid] >= self.per_uid:
                return f"{self.per_uid} requests of uid {uid} in progress"
            elif sum(n for u, n in self.active.items() if u != 0) >= self.total:
                return f"{self.total} requests of local users in progress"
            self.active[uid] += 1
            return None

    def give_back(self, uid: int) -> None:
        with self._lock:
            self.active[uid] -= 1
            if self.active[uid] <= 0:
                del self.active[uid]


class _Handler(socketserver.BaseRequestHandler):
    """One connection; its client_address is the caller's (uid, gid) as the kernel reported it."""

    server: "SocketServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        deadline = time.monotonic() + protocol.REQUEST_SECONDS
        caller = caller_from_credentials(*self.client_address)
        try:
            request = protocol.receive(sock, protocol.MAX_REQUEST, deadline)
            reply = {"ok": True, **self.server.dispatch(caller, request)}
        except (BridgeError, protocol.ProtocolError) as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:  # a bug or an API outage: tell the caller, keep serving others
            log.exception("request from %s failed", caller.user)
            reply = {"ok": False, "error": f"arkd internal error: {type(e).__name__}: {e}"[:500]}
        _reply(sock, reply)


class SocketServer(socketserver.UnixStreamServer):
    """One thread per connection, within the budget."""

    request_queue_size = 128

    def __init__(self, path: Path, bridge: Bridge, budget: ConnectionBudget | None = None):
        self.bridge = bridge
        self.budget = budget or ConnectionBudget()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()
        super().__init__(str(path), _Handler)
        # Any local account may connect; what it may do is decided per request from its uid.
        os.chmod(path, 0o666)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.warning("cannot accept a connection: %s; pausing %g s", e.strerror, EMFILE_PAUSE)
                time.sleep(EMFILE_PAUSE)
            raise

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        try:
            credentials = peer_uid_gid(request)
        except OSError:
            self.shutdown_request(request)
            return
        refused = self.budget.take(credentials[0])
        if refused is not None:
            _reply(request, protocol.busy_reply(refused))
            self.shutdown_request(request)
            return
        try:
            threading.Thread(target=self._serve, args=(request, credentials), daemon=True).start()
        except Exception:  # no thread to be had: the caller is told, as when over budget
            self.budget.give_back(credentials[0])
            _reply(request, protocol.busy_reply("no thread available"))
            self.shutdown_request(request)

    def _serve(self, request: socket.socket, credentials: tuple[int, int]) -> None:
        try:
            try:
                self.finish_request(request, credentials)
            except Exception:
                self.handle_error(request, credentials)
            finally:
                self.shutdown_request(request)
        finally:
            self.budget.give_back(credentials[0])

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


def _reply(sock: socket.socket, reply: dict[str, Any]) -> None:
    # A caller that does not read its reply cannot hold a thread for long.
    try:
        sock.settimeout(REPLY_SECONDS)
        protocol.send(sock, reply)
    except OSError:
        pass


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise protocol.ProtocolError(f"request has no text field {key!r}")
    return value
