"""The arkd wire protocol: one JSON request and one JSON reply per connection, newline-framed.

Standard library only: the LRMS scripts import this under Debian's own python3 as the mapped
grid user, where neither the Kubernetes client nor the site's virtualenv is readable.
"""

import json
import socket
from typing import Any

DEFAULT_SOCKET = "/run/arkd/arkd.sock"
MAX_MESSAGE = 4 << 20


class ProtocolError(Exception):
    pass


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def receive(sock: socket.socket) -> dict[str, Any]:
    chunks, size = [], 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message larger than {MAX_MESSAGE} bytes")
    try:
        message = json.loads(b"".join(chunks))
    except ValueError:
        raise ProtocolError("message is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


def call(path: str, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to arkd and return its reply; OSError if arkd is not there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        send(sock, request)
        sock.shutdown(socket.SHUT_WR)
        return receive(sock)
