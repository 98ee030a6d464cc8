"""The arkd wire protocol: one JSON request and one JSON reply per connection, newline-framed.

Standard library only: the LRMS scripts import this under Debian's own python3 as the mapped
grid user, where neither the Kubernetes client nor the site's virtualenv is readable.
"""

import json
import random
import socket
import time
from typing import Any

DEFAULT_SOCKET = "/run/arkd/arkd.sock"
# A submit with the largest job script arkd accepts (128 KiB, translate.MAX_SCRIPT_BYTES) as UTF-8
# JSON, where escaping doubles newlines, quotes and backslashes. A script full of other control
# characters (six bytes each, escaped) can be larger: it is refused with the size named.
MAX_REQUEST = (1 << 20) + (64 << 10)
# Replies to root (the site summary at ten thousand jobs) may be larger.
MAX_REPLY = 64 << 20
# A whole request must arrive within this, however slowly its bytes trickle in.
REQUEST_SECONDS = 10.0
# How long a client waits for arkd's answer: arkd itself rides out an API server that is away for
# up to 180 s per call (kube.API_RETRY_SECONDS); the second call of a repeated submit finds it back.
REPLY_TIMEOUT = 240.0
# How long a client keeps retrying while arkd is restarting (its socket missing or not accepting)
# or says it is busy with other requests of its user: as long as it would wait for an answer, as
# a user's requests pile up while arkd waits for an API server that is away.
RETRY_SECONDS = 240.0


class ProtocolError(Exception):
    pass


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, ensure_ascii=False).encode() + b"\n")


def receive(sock: socket.socket, limit: int, deadline: float | None = None) -> dict[str, Any]:
    """One message of at most `limit` bytes, complete by `deadline` (time.monotonic()) if given;
    without a deadline, the socket's own timeout applies (socket.timeout, an OSError)."""
    chunks, size = [], 0
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(f"message not complete within {REQUEST_SECONDS:g} s")
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if deadline is None:
                raise
            raise ProtocolError(f"message not complete within {REQUEST_SECONDS:g} s") from None
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"message larger than {limit} bytes")
        if chunk.endswith(b"\n"):
            break
    try:
        message = json.loads(b"".join(chunks))
    except ValueError:
        raise ProtocolError("message is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    try:
        # JSON may escape what UTF-8 cannot hold (a lone surrogate): no text field may carry one.
        json.dumps(message, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ProtocolError("message is not valid Unicode text") from None
    return message


def busy_reply(detail: str) -> dict[str, Any]:
    return {"ok": False, "busy": True, "error": f"arkd is busy: {detail}"}


def call(path: str, request: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """Send one request to arkd and return its reply; OSError if arkd is not there.

    While arkd is restarting (systemd brings it back within seconds) or answers busy (too many
    requests in flight for this user), try again after a short, growing, randomised pause, for up
    to RETRY_SECONDS: a job submitted meanwhile is late, not failed.
    """
    give_up = time.monotonic() + RETRY_SECONDS
    pause = 0.05
    while True:
        try:
            reply = _call_once(path, request, timeout)
            if not reply.get("busy"):
                return reply
        except (ConnectionRefusedError, FileNotFoundError):
            if time.monotonic() + pause > give_up:
                raise
        else:
            if time.monotonic() + pause > give_up:
                return reply
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 2.0)


def _call_once(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        try:
            send(sock, request)
            sock.shutdown(socket.SHUT_WR)
        except BrokenPipeError:
            pass  # arkd refused at once (busy) and closed: its reply is waiting
        return receive(sock, MAX_REPLY)
