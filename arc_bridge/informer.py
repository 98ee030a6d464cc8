"""Informer-style cache of the bridge's Jobs or pods: list once, watch from there, relist on 410.

No per-job polling: one list and one long watch per kind, and every change is handed to a single
callback (the service's reconcile path).
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .kube import Gone, Kube

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def slim(obj: Obj) -> Obj:
    """The object without what arkd never reads and a cache of 10,000 jobs would hold: the
    server's field-ownership records, and the containers' command and arguments (ARC's job script,
    up to 128 KiB a job, in the Job's template and again in its pod). In place; returns it."""
    obj.get("metadata", {}).pop("managedFields", None)
    spec = obj.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or spec
    for container in pod_spec.get("containers") or ():
        container.pop("command", None)
        container.pop("args", None)
    return obj


def key_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


class Informer:
    """`index` names each object by a secondary key (the ARC job id) for O(1) lookups; objects
    that `accept` refuses (look-alikes made by someone else) are neither cached nor delivered."""

    def __init__(self, kube: Kube, kind: str, on_change: Callable[[str, Obj], None],
                 index: Callable[[Obj], str | None], accept: Callable[[Obj], bool]):
        self.kube, self.kind, self.on_change, self.index, self.accept = kube, kind, on_change, index, accept
        self.cache: dict[str, Obj] = {}
        self._by_index: dict[str, dict[str, Obj]] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def items(self) -> list[Obj]:
        with self.lock:
            return list(self.cache.values())

    def lookup(self, index_key: str) -> list[Obj]:
        with self.lock:
            return list(self._by_index.get(index_key, {}).values())

    def _put(self, obj: Obj) -> None:
        slim(obj)
        key = key_of(obj)
        self._drop(key)
        self.cache[key] = obj
        if (ikey := self.index(obj)) is not None:
            self._by_index.setdefault(ikey, {})[key] = obj

    def _drop(self, key: str) -> None:
        old = self.cache.pop(key, None)
        if old is not None and (ikey := self.index(old)) is not None:
            bucket = self._by_index.get(ikey, {})
            bucket.pop(key, None)
            if not bucket:
                self._by_index.pop(ikey, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist()
                while not self._stop.is_set():
                    version = self._watch(version)
            except Gone:
                log.info("%s watch expired (410), listing again", self.kind)
            except Exception as e:  # the API server may restart; keep trying, calmly
                log.warning("%s watch failed: %s; retrying in 2 s", self.kind, e)
                time.sleep(2)

    def _relist(self) -> str:
        listed, version = self.kube.list_objects(self.kind)
        # Vanished means gone from the API, not refused: a refused object is not a deleted one.
        fresh = {key_of(o) for o in listed}
        items = [o for o in listed if self._accepted(o)]
        with self.lock:
            vanished = [o for k, o in self.cache.items() if k not in fresh]
            self.cache, self._by_index = {}, {}
            for obj in items:
                self._put(obj)
        for obj in vanished:
            self._deliver("DELETED", obj)
        for obj in items:
            self._deliver("SYNC", obj)
        self.synced.set()
        return version

    def _watch(self, version: str) -> str:
        for kind, obj in self.kube.watch(self.kind, version, timeout=240):
            version = obj["metadata"]["resourceVersion"]
            if kind == "BOOKMARK" or not self._accepted(obj):
                continue
            log.debug("%s %s %s phase=%s", kind, self.kind, key_of(obj), (obj.get("status") or {}).get("phase"))
            with self.lock:
                if kind == "DELETED":
                    self._drop(key_of(obj))
                else:
                    self._put(obj)
            self._deliver(kind, obj)
        return version

    def _accepted(self, obj: Obj) -> bool:
        if self.accept(obj):
            return True
        log.warning("ignoring %s %s: it has arkd's labels but is not in the namespace of the VO it names",
                    self.kind, key_of(obj))
        return False

    def _deliver(self, kind: str, obj: Obj) -> None:
        # One object that cannot be handled (say, an unwritable control file) must not stall the
        # others; it is retried on the next event or relist.
        try:
            self.on_change(kind, obj)
        except Exception:
            log.exception("handling %s %s %s failed", kind, self.kind, key_of(obj))
