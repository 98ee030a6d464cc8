"""Does a job's image have the shell ARC's job script runs with? Asked at submit.

The answer is the image's own file tree (registry.py reads it, imagefs.py models it), cached by
manifest digest, and a tag's digest for `tag_ttl` seconds, so a submit costs at most one small
manifest request. The trees of layer chains read so far are kept too (up to `tree_nodes` nodes in
all), so images built on the same base, a VO's usual case, read the base's layers once. The check must never be why a good job is refused: whatever it cannot find
out (registry away, image too big or strange, time budget spent) is "unknown", and the caller
lets the job through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .errors import BridgeError
from .imagefs import ZSTD, Dir, File, FileTree, ImageError, Lookup, Other, open_layer
from .registry import Descriptor, Fetched, ImageRef, Registry, RegistryError, parse_ref

log = logging.getLogger(__name__)

SHELL = "/bin/sh"  # translate.py's container command
LAYER_TYPES = re.compile(r"^application/vnd\.(oci\.image\.layer\.(nondistributable\.)?v1\.tar(\+gzip|\+zstd)?"
                         r"|docker\.image\.rootfs\.(foreign\.)?diff\.tar(\.gzip)?)$")


@dataclass(frozen=True)
class ShellAnswer:
    image: str
    present: bool | None  # None: unknown, let the job through (and log `detail`)
    detail: str = ""  # why: where /bin/sh leads, or why the answer is unknown
    digest: str | None = None  # the manifest (or index) digest the answer is for

    @property
    def message(self) -> str:
        """The one-line refusal for an image without the shell."""
        return (f"image {self.image} has no {SHELL}, which runs ARC's job script: the VO's image needs a "
                f"POSIX shell ({self.detail})")


class _Scan:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: ShellAnswer | None = None


class ShellCheck:
    """Answers `check(image)` from its caches, or reads the image once however many submits ask.

    A submit waits at most `wait` seconds for a scan; the scan goes on in the background for up to
    `scan_budget` seconds and answers later submits. At most `max_scans` images are read at once.
    Unknown answers are remembered for `failure_ttl` seconds, so an unreachable registry costs
    one timeout, not one per submit."""

    def __init__(self, registry: Registry, *, wait: float = 5.0, scan_budget: float = 60.0, tag_ttl: float = 60.0,
                 failure_ttl: float = 60.0, max_scans: int = 2, cache_size: int = 1024, tree_nodes: int = 500_000,
                 clock: Callable[[], float] = time.monotonic, **limits: int) -> None:
        self.registry = registry
        self.wait, self.scan_budget, self.tag_ttl, self.failure_ttl = wait, scan_budget, tag_ttl, failure_ttl
        self.max_scans, self.cache_size, self.clock, self.limits = max_scans, cache_size, clock, limits
        self.tree_nodes = tree_nodes
        self._trees: OrderedDict[tuple[str, ...], FileTree] = OrderedDict()  # layer digests -> their tree
        self._lock = threading.Lock()
        self._tags: OrderedDict[str, tuple[float, str]] = OrderedDict()  # image -> (until, digest)
        self._answers: OrderedDict[tuple[str, tuple[str, ...]], ShellAnswer] = OrderedDict()
        self._failed: OrderedDict[Any, tuple[float, ShellAnswer]] = OrderedDict()  # image or answer key
        self._scans: dict[tuple[str, tuple[str, ...]], _Scan] = {}

    def check(self, image: str, mounts: Iterable[str] = (), *, remember_missing: bool = True) -> ShellAnswer:
        """Whether `image` has an executable /bin/sh. `mounts`: the paths the job's pod mounts over
        the image (VO mounts, session directory, scratch); a shell found only through one is unknown.
        remember_missing=False: a registry that cannot give the image's manifest is asked again
        at the next call, not after `failure_ttl`."""
        try:
            ref = parse_ref(image)
        except RegistryError as e:
            return ShellAnswer(image, None, str(e))
        points = tuple(sorted(set(mounts)))
        now = self.clock()
        with self._lock:
            digest = ref.digest or self._fresh(self._tags, image, now)
            if digest and (known := self._known((digest, points), now)):
                return replace(known, image=image)
            if not digest and (failed := self._fresh(self._failed, image, now)):
                return replace(failed, image=image)
        fetched = None
        if digest is None:
            try:
                fetched = self.registry.fetch_manifest(ref)
            except RegistryError as e:
                if not remember_missing:
                    return ShellAnswer(image, None, str(e))
                return self._failure(image, ShellAnswer(image, None, str(e)), now)
            digest = fetched.digest
            with self._lock:
                self._remember(self._tags, image, (now + self.tag_ttl, digest))
                if known := self._known((digest, points), now):
                    return replace(known, image=image)
        key = (digest, points)
        with self._lock:
            scan = self._scans.get(key)
            if scan is None:
                if len(self._scans) >= self.max_scans:
                    return ShellAnswer(image, None, f"arkd is already reading {self.max_scans} other images", digest)
                scan = self._scans[key] = _Scan()
                try:
                    threading.Thread(target=self._scan, args=(ref, fetched, key, scan), daemon=True,
                                     name=f"shellcheck {image}").start()
                except RuntimeError as e:
                    del self._scans[key]
                    return ShellAnswer(image, None, f"cannot start reading the image: {e}", digest)
        if scan.done.wait(self.wait) and scan.answer is not None:
            return replace(scan.answer, image=image)
        return ShellAnswer(image, None, f"reading the image takes more than {self.wait:g} s; "
                                        f"it goes on for later submits", digest)

    def warm(self, wanted: Iterable[tuple[str, Iterable[str]]]) -> threading.Thread:
        """Check each (image, mounts) of `wanted`, one after another, in a thread of its own that
        nothing waits for, leaving the other scan slots to submits. An image the registry does not
        have yet (arkd starts before a new site's images are pushed) is not remembered as such."""
        def run() -> None:
            started, count = time.monotonic(), 0
            for image, mounts in wanted:
                self.check(image, mounts, remember_missing=False)
                with self._lock:
                    scans = list(self._scans.values())
                for scan in scans:
                    scan.done.wait(self.scan_budget)
                count += 1
            log.info("checked %d images and mounts for %s in %.1f s", count, SHELL, time.monotonic() - started)

        thread = threading.Thread(target=run, daemon=True, name="shellcheck warm")
        thread.start()
        return thread

    def _scan(self, ref: ImageRef, fetched: Fetched | None, key: tuple[str, tuple[str, ...]], scan: _Scan) -> None:
        answer, failed = ShellAnswer(str(ref), None, "reading the image failed", key[0]), True
        try:
            answer, failed = self._read(ref, fetched, key), False
        except BridgeError as e:
            answer = ShellAnswer(str(ref), None, str(e), key[0])
            log.warning("cannot tell whether image %s has %s: %s", ref, SHELL, answer.detail)
        except Exception as e:  # never a reason to refuse a job, nor to lose arkd's thread silently
            answer = ShellAnswer(str(ref), None, f"reading the image failed: {type(e).__name__}: {e}", key[0])
            log.exception("cannot tell whether image %s has %s", ref, SHELL)
        finally:
            with self._lock:
                if failed:  # tried again after failure_ttl
                    self._remember(self._failed, key, (self.clock() + self.failure_ttl, answer))
                else:
                    self._remember(self._answers, key, answer)
                del self._scans[key]
                scan.answer = answer
            scan.done.set()

    def _read(self, ref: ImageRef, fetched: Fetched | None, key: tuple[str, tuple[str, ...]]) -> ShellAnswer:
        deadline = time.monotonic() + self.scan_budget
        manifest = self.registry.platform_manifest(ref, fetched) if fetched else self.registry.manifest(ref)
        for layer in manifest.layers:
            _check_layer_type(layer)
        chain = tuple(layer.digest for layer in manifest.layers)
        tree, done = self._tree_below(chain)
        for i in range(done, len(chain)):
            with self.registry.open_blob(ref, manifest.layers[i], deadline) as blob:
                tree.apply(open_layer(blob))
                blob.drain()
            self._keep_tree(chain[: i + 1], tree)
        answer = shell_answer(str(ref), tree.lookup(SHELL, key[1]), key[0])
        log.info("image %s (%s) %s %s: %s", ref, manifest.digest, "has" if answer.present else "has no", SHELL,
                 answer.detail)
        return answer

    def _tree_below(self, chain: tuple[str, ...]) -> tuple[FileTree, int]:
        """A copy of the tree of the longest start of `chain` read before, and its length."""
        with self._lock:
            for n in range(len(chain), 0, -1):
                if (tree := self._trees.get(chain[:n])) is not None:
                    self._trees.move_to_end(chain[:n])
                    break
            else:
                return FileTree(**self.limits), 0
        return tree.copy(), n

    def _keep_tree(self, chain: tuple[str, ...], tree: FileTree) -> None:
        if tree.nodes > self.tree_nodes:
            return
        kept = tree.copy()
        with self._lock:
            self._trees[chain] = kept
            self._trees.move_to_end(chain)
            while sum(t.nodes for t in self._trees.values()) > self.tree_nodes:
                self._trees.popitem(last=False)

    def _known(self, key: tuple[str, tuple[str, ...]], now: float) -> ShellAnswer | None:
        if (answer := self._answers.get(key)) is not None:
            self._answers.move_to_end(key)
            return answer
        return self._fresh(self._failed, key, now)

    def _failure(self, key: Any, answer: ShellAnswer, now: float) -> ShellAnswer:
        with self._lock:
            self._remember(self._failed, key, (now + self.failure_ttl, answer))
        return answer

    def _fresh(self, cache: OrderedDict[Any, tuple[float, Any]], key: Any, now: float) -> Any:
        entry = cache.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del cache[key]
            return None
        return entry[1]

    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)


def shell_answer(image: str, found: Lookup, digest: str | None = None) -> ShellAnswer:
    """What a lookup of /bin/sh says about the image."""
    where = f"{SHELL}: " if found.path == SHELL else f"{SHELL} leads to {found.path}: "
    if found.mount is not None:
        return ShellAnswer(image, None, f"{SHELL} leads to {found.path}, mounted over the image", digest)
    if found.executable:
        return ShellAnswer(image, True, f"{SHELL} is {found.path}", digest)
    if found.error is not None:
        return ShellAnswer(image, False, where + found.error, digest)
    node = found.node
    what = ("a directory" if isinstance(node, Dir) else f"a {node.kind}" if isinstance(node, Other)
            else f"not executable (mode {node.mode:04o})" if isinstance(node, File) else "not a file")
    return ShellAnswer(image, False, where + what, digest)


def _check_layer_type(layer: Descriptor) -> None:
    if not LAYER_TYPES.match(layer.media_type):
        raise ImageError(f"layer {layer.digest} has media type {layer.media_type!r}, not a filesystem layer")
    if layer.media_type.endswith("zstd") and not ZSTD:
        raise ImageError(f"layer {layer.digest} is zstd-compressed, which this Python cannot read")
