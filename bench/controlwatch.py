"""When each job reached each step, read from A-REX's control directory as A-REX writes it.

An inotify watch (Linux, through ctypes: the standard library has none) on the control directory
and its state subdirectories, so every write is timed when it happens, on this machine's clock,
with no polling between. The CE host's control directory is a directory of this machine (the
host's root is), so the watch sees A-REX's writes inside the host.

ARC 6's layout (arc_bridge.controldir): `job.<ID>.<suffix>` flat in the control directory, the
status file `job.<ID>.status` in accepting/, processing/ or finished/, by state. Recorded per job:
- the first time each state was written (the status file's content, PENDING: dropped);
- `lrms_done`: when `job.<ID>.lrms_done` was first written (the LRMS reported the job's end);
- `grami`: every time `job.<ID>.grami` was closed after writing. A-REX writes it just before it
  starts the backend's submit script, and the script appends the job's local id at its end: the
  first two closes bracket the submit script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from arc_bridge.controldir import ControlDir

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT = struct.Struct("iIII")
STATE_DIRS = ("accepting", "processing", "finished", "restarting")


@dataclass
class JobTimes:
    states: dict[str, float] = field(default_factory=dict)
    grami: list[float] = field(default_factory=list)
    lrms_done: float | None = None

    @property
    def submit_script_s(self) -> float | None:
        return self.grami[1] - self.grami[0] if len(self.grami) >= 2 else None


def parse_events(buffer: bytes) -> list[tuple[int, int, str]]:
    """(watch descriptor, mask, name) of each struct inotify_event in `buffer`."""
    events, offset = [], 0
    while offset + EVENT.size <= len(buffer):
        wd, mask, _cookie, length = EVENT.unpack_from(buffer, offset)
        raw = buffer[offset + EVENT.size : offset + EVENT.size + length]
        events.append((wd, mask, raw.split(b"\0", 1)[0].decode(errors="replace")))
        offset += EVENT.size + length
    return events


class ControlDirWatch:
    """Records JobTimes for every job A-REX writes about while running (start() .. stop())."""

    def __init__(self, controldir: Path):
        self.root = Path(controldir)
        self.layout = ControlDir(self.root)
        if self.layout.arc7:  # job files in a directory per job: a watch on the top sees none
            raise ValueError(f"{self.root} has ARC 7's layout (jobs/); this watch reads ARC 6's")
        self.jobs: dict[str, JobTimes] = defaultdict(JobTimes)
        self.lock = threading.Lock()
        self.overflowed = False
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, str] = {}
        for sub in ("", *STATE_DIRS):
            path = self.root / sub
            path.mkdir(exist_ok=True)
            wd = libc.inotify_add_watch(self.fd, os.fsencode(path), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self.dirs[wd] = sub
        self.stop_read, self.stop_write = os.pipe()
        self.thread = threading.Thread(target=self._run, name="controldir-watch", daemon=True)

    def start(self) -> ControlDirWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        os.write(self.stop_write, b"x")
        self.thread.join(timeout=10)
        for fd in (self.fd, self.stop_read, self.stop_write):
            os.close(fd)

    def times(self, grid_id: str) -> JobTimes:
        with self.lock:
            return self.jobs[grid_id]

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self.stop_read], [], [])
            if self.stop_read in ready:
                return
            try:
                buffer = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            now = time.time()
            for wd, mask, name in parse_events(buffer):
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True  # an event was lost: the caller must not trust the figures
                    continue
                self._record(self.dirs.get(wd), mask, name, now)

    def _record(self, sub: str | None, mask: int, name: str, now: float) -> None:
        parsed = self.layout.parse_name(name)
        if sub is None or parsed is None:
            return
        grid_id, suffix = parsed
        if sub:  # a state directory: what the status now says
            if suffix != "status" or not mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                return
            try:
                state = (self.root / sub / name).read_text().strip().removeprefix("PENDING:")
            except OSError:  # already moved on to the next state's directory
                return
            with self.lock:
                self.jobs[grid_id].states.setdefault(state, now)
        elif suffix == "grami" and mask & IN_CLOSE_WRITE:
            with self.lock:
                self.jobs[grid_id].grami.append(now)
        elif suffix == "lrms_done" and mask & (IN_CREATE | IN_MOVED_TO):
            with self.lock:
                if self.jobs[grid_id].lrms_done is None:
                    self.jobs[grid_id].lrms_done = now
