"""arkd's socket: no caller can hold it, flood it or outwait it at the expense of the others."""

import errno
import json
import os
import socket
import socketserver
import threading
import time

import pytest

from arc_bridge import protocol, server
from arc_bridge.server import ConnectionBudget, SocketServer
from arc_bridge.translate import MAX_SCRIPT_BYTES


ME = os.getuid()


class Answering:
    """What the socket hands requests to; `info` waits until the test releases it."""

    def __init__(self):
        self.release = threading.Event()

    def info(self, caller):
        self.release.wait(10)
        return {"uid": caller.uid}

    def scan(self, caller):
        return 0


@pytest.fixture
def serving(tmp_path):
    bridge = Answering()
    # Two at a time for this test's uid, root or not.
    srv = SocketServer(tmp_path / "arkd.sock", bridge, ConnectionBudget(total=2, per_uid=2, root=2))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv, bridge, str(tmp_path / "arkd.sock")
    bridge.release.set()
    srv.shutdown()
    srv.server_close()


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


def test_the_budget_caps_each_user_and_all_users_and_keeps_a_reserve_for_root():
    budget = ConnectionBudget(total=3, per_uid=2, root=1)
    assert budget.take(1000) is None and budget.take(1000) is None
    assert budget.take(1000) == "2 requests of uid 1000 in progress"
    assert budget.take(1001) is None
    assert budget.take(1002) == "3 requests of local users in progress"
    assert budget.take(0) is None  # A-REX's scan still gets through
    assert budget.take(0) == "1 requests of root in progress"
    budget.give_back(1000)
    assert budget.take(1002) is None
    for uid in (1000, 1001, 1002, 0):
        budget.give_back(uid)
    assert not budget.active


def hold_two(srv, path):
    """Two requests in flight for this test's uid: its whole share."""
    held = [connect(path) for _ in range(2)]
    for sock in held:
        protocol.send(sock, {"op": "info"})
    deadline = time.monotonic() + 5
    while srv.budget.active[ME] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return held


def test_a_caller_over_its_share_is_told_busy_at_once(serving):
    srv, bridge, path = serving
    held = hold_two(srv, path)
    with connect(path) as third:
        reply = protocol.receive(third, protocol.MAX_REPLY)
    who = "root" if ME == 0 else f"uid {ME}"
    assert reply == {"ok": False, "busy": True, "error": f"arkd is busy: 2 requests of {who} in progress"}
    bridge.release.set()
    for sock in held:
        assert protocol.receive(sock, protocol.MAX_REPLY) == {"ok": True, "info": {"uid": ME}}
        sock.close()


def test_the_client_waits_out_a_busy_arkd(serving, monkeypatch):
    srv, bridge, path = serving
    held = hold_two(srv, path)
    replies = []
    call_once = protocol._call_once
    monkeypatch.setattr(protocol, "_call_once", lambda *a: replies.append(call_once(*a)) or replies[-1])
    threading.Timer(0.5, bridge.release.set).start()
    assert protocol.call(path, {"op": "scan"}) == {"ok": True, "lost": 0}
    assert replies[0]["busy"] and len(replies) > 1
    for sock in held:
        sock.close()


def test_a_request_that_is_not_unicode_text_is_refused(serving):
    _srv, _bridge, path = serving
    with connect(path) as sock:
        sock.sendall(b'{"op": "submit", "grami": "\\ud800", "script": ""}\n')
        reply = protocol.receive(sock, protocol.MAX_REPLY)
    assert reply == {"ok": False, "error": "message is not valid Unicode text"}


def test_a_request_must_arrive_whole_within_the_deadline_however_it_trickles(serving, monkeypatch):
    monkeypatch.setattr(protocol, "REQUEST_SECONDS", 0.5)
    _srv, _bridge, path = serving
    with connect(path) as sock:
        start = time.monotonic()
        try:
            for byte in b'{"op": "scan"':
                sock.send(bytes([byte]))
                time.sleep(0.1)
        except BrokenPipeError:
            pass
        reply = protocol.receive(sock, protocol.MAX_REPLY)
    assert reply == {"ok": False, "error": "message not complete within 0.5 s"}
    assert time.monotonic() - start < 1.5


def test_an_oversized_request_is_refused_without_being_read_to_the_end(serving):
    _srv, _bridge, path = serving
    with connect(path) as sock:
        try:
            sock.sendall(b"x" * (protocol.MAX_REQUEST + 65536))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = protocol.receive(sock, protocol.MAX_REPLY)
    assert reply == {"ok": False, "error": f"message larger than {protocol.MAX_REQUEST} bytes"}


def test_the_largest_script_arkd_accepts_fits_in_a_request():
    script = ("echo 'é'\n" * (MAX_SCRIPT_BYTES // 10))[:MAX_SCRIPT_BYTES]
    request = {"op": "submit", "grami": "joboption_gridid=x\n" * 100, "script": script}
    assert len(json.dumps(request, ensure_ascii=False).encode()) <= protocol.MAX_REQUEST


def test_a_connection_given_back_frees_its_place(serving):
    srv, _bridge, path = serving
    for _ in range(10):  # far more than the budget, one after another
        assert protocol.call(path, {"op": "scan"}) == {"ok": True, "lost": 0}
    deadline = time.monotonic() + 5
    while srv.budget.active:
        assert time.monotonic() < deadline, srv.budget.active
        time.sleep(0.01)


def test_accept_pauses_instead_of_spinning_when_out_of_file_descriptors(serving, monkeypatch):
    srv, _bridge, _path = serving

    def out_of_fds(self):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(socketserver.UnixStreamServer, "get_request", out_of_fds)
    start = time.monotonic()
    with pytest.raises(OSError):
        srv.get_request()
    assert time.monotonic() - start >= server.EMFILE_PAUSE


def test_the_client_waits_for_an_arkd_that_is_restarting(tmp_path, monkeypatch):
    path = tmp_path / "arkd.sock"
    monkeypatch.setattr(protocol, "RETRY_SECONDS", 10.0)

    def start_late():
        time.sleep(0.5)
        srv = SocketServer(path, Answering())
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(srv)

    started = []
    threading.Thread(target=start_late, daemon=True).start()
    try:
        assert protocol.call(str(path), {"op": "scan"}) == {"ok": True, "lost": 0}
    finally:
        for srv in started:
            srv.shutdown()
            srv.server_close()


def test_the_client_gives_up_on_an_arkd_that_stays_away(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "RETRY_SECONDS", 0.3)
    with pytest.raises(FileNotFoundError):
        protocol.call(str(tmp_path / "arkd.sock"), {"op": "scan"})
