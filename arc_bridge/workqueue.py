"""A queue of keys to handle, as client-go's workqueue: the informers' watch threads only add keys,
a worker does the I/O, so a slow API server or control directory never stalls a watch.

A key added many times before it is handled is handled once; a key added while it is being
handled is handled again afterwards, never by two workers at once.
"""

import threading
from collections import deque


class WorkQueue:
    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # queued, or to be queued again once handled
        self._processing: set[str] = set()

    def add(self, key: str) -> None:
        with self._ready:
            if key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._ready.notify()

    def get(self, timeout: float | None = None) -> str | None:
        """The next key, which the caller must hand back with done(); None after `timeout`."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._queue, timeout):
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: str) -> None:
        with self._ready:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._ready.notify()

    def __len__(self) -> int:
        with self._ready:
            return len(self._queue)
