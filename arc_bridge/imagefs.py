"""An image's file tree from its layers' tar headers, and path lookup in it as the kernel does it.

Pure: tar streams in, answers out. Only headers are kept (type, mode, link target), never file
contents. Layers apply as containerd unpacks them (OCI image-spec, layer.md): in order, each entry
at its lexically cleaned path inside the root, with symlinks in its parent directories followed
within the root and missing parents created; `.wh.NAME` deletes NAME, `.wh..wh..opq` hides what
lower layers had under its directory. A VO manager controls images, so every name, link and count
is hostile: the tree never escapes its root, and a layer too big or too strange is refused with an
ImageError rather than exhausting arkd.
"""

from __future__ import annotations

import gzip
import importlib.util
import tarfile
import zlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

from .errors import BridgeError

MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS: a lookup following more fails with ELOOP
PATH_MAX = 4096
NAME_MAX = 255
MAX_NODES = 1_000_000  # files, directories and links in the tree at once
MAX_STEPS = 50_000_000  # path components walked while building: bounds CPU whatever links do
MAX_META_HEADER = 1 << 20  # a pax or GNU long-name header (one entry's metadata)
MAX_GLOBAL_HEADERS = 64 << 10  # pax global headers, a layer's total: tarfile applies them to every entry
MAX_HEADER_CHAIN = 8  # metadata headers before one entry
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
ENOENT = "no such file or directory"
ENOTDIR = "not a directory"
ELOOP = "too many levels of symbolic links"
# Python 3.14 reads zstd (compression.zstd); older ones cannot.
try:
    ZSTD = importlib.util.find_spec("compression.zstd") is not None
except ImportError:
    ZSTD = False
_META = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_OTHER = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}


class ImageError(BridgeError):
    """An image's layers cannot be read as a file tree (not tar, too big, unsupported)."""


@dataclass(slots=True)
class File:
    mode: int  # permission bits
    layer: int  # the layer that last wrote it (1 is the lowest)


@dataclass(slots=True)
class Symlink:
    target: str
    layer: int


@dataclass(slots=True)
class Other:
    kind: str  # "character device", "block device", "fifo"
    layer: int


@dataclass(slots=True, eq=False)
class Dir:
    mode: int
    layer: int
    children: dict[str, Node] = field(default_factory=dict)
    sealed: int = 0  # the layer in which nothing of a lower layer is left below it (an opaque whiteout)


Node = File | Symlink | Other | Dir


@dataclass(frozen=True)
class Lookup:
    """Where a path leads. `path` is the real path reached: the file's, or where the lookup stopped."""

    path: str
    node: Node | None
    error: str | None = None  # ENOENT, ENOTDIR or ELOOP; None when found (or `mount`)
    mount: str | None = None  # the lookup reached this path mounted over the image: the image cannot tell

    @property
    def executable(self) -> bool:
        """A regular file with an execute bit (anyone's)."""
        return isinstance(self.node, File) and bool(self.node.mode & 0o111)


class FileTree:
    """The merged file tree of an image's layers, applied lowest first with `apply`."""

    def __init__(self, max_nodes: int = MAX_NODES, max_steps: int = MAX_STEPS) -> None:
        self.root = Dir(0o755, 0)
        self.layers = 0
        self.nodes = 0
        self.max_nodes, self.max_steps = max_nodes, max_steps
        self._steps = 0

    def copy(self) -> FileTree:
        """An independent tree with the same files, for further layers to change (images that
        share lower layers). Iterative: a tree as deep as PATH_MAX allows is no recursion limit."""
        other = FileTree(self.max_nodes, self.max_steps)
        other.layers, other.nodes, other._steps = self.layers, self.nodes, self._steps
        other.root = Dir(self.root.mode, self.root.layer, sealed=self.root.sealed)
        pending = [(self.root, other.root)]
        while pending:
            source, target = pending.pop()
            for name, node in source.children.items():
                if isinstance(node, Dir):
                    copied = Dir(node.mode, node.layer, sealed=node.sealed)
                    pending.append((node, copied))
                    target.children[name] = copied
                else:
                    target.children[name] = replace(node)
        return other

    def apply(self, layer: Iterable[tarfile.TarInfo]) -> None:
        """Apply the next layer: a TarFile (best opened with `open_layer`) or TarInfo headers."""
        self.layers += 1
        try:
            for info in _entries(layer):
                self._apply(info)
        except BridgeError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError, zlib.error,
                RecursionError) as e:
            raise ImageError(f"layer {self.layers} of the image is not a readable tar archive: {e}") from None

    def lookup(self, path: str, mounts: Collection[str] = ()) -> Lookup:
        """Resolve an absolute path as the kernel does: symlinks followed in every component (the
        last one too), relative targets from the link's directory, absolute ones from the image's
        root, `..` never above the root, at most MAX_SYMLINKS links. A lookup that reaches one of
        `mounts` (absolute paths mounted over the image), or misses a directory the runtime creates
        for one, stops there with `mount` set."""
        parts = path.split("/")
        if parts[-1] == "":
            parts[-1] = "."  # "d/" names d as a directory: d/.
        points = {tuple(_clean(m) or ()) for m in mounts if m.startswith("/")} - {()}
        above = {p[:i] for p in points for i in range(1, len(p))}
        return self._resolve(parts, mounts=points, above=above)

    def is_executable(self, path: str) -> bool:
        """`path` leads to a regular file with an execute bit."""
        return self.lookup(path).executable

    def _apply(self, info: tarfile.TarInfo) -> None:
        self._charge(1)
        parts = _clean(info.name)
        if parts is None or not parts or not _creatable(parts):
            return  # the root itself, or a name the kernel refuses (the runtime fails to unpack it)
        base = parts[-1]
        node = None if base.startswith(WHITEOUT) else self._node(info)
        if node is None and not base.startswith(WHITEOUT):
            return
        parent = self._resolve(parts[:-1], create=True).node
        if not isinstance(parent, Dir):
            return  # a parent is a file, or symlinks loop: the runtime fails to unpack it
        if node is None:
            if base == OPAQUE:
                self._seal(parent)
            elif not base.startswith(WHITEOUT + WHITEOUT):  # `.wh..wh.*` but opq: aufs metadata
                self._remove(parent, base[len(WHITEOUT):])
            return
        existing = parent.children.get(base)
        if isinstance(existing, Dir) and isinstance(node, Dir):
            existing.mode, existing.layer = node.mode, node.layer  # a directory over a directory keeps its content
            return
        self._remove(parent, base)
        parent.children[base] = node
        self._added(1)

    def _node(self, info: tarfile.TarInfo) -> Node | None:
        """What a (non-whiteout) entry puts in the tree; None if the runtime would not create it."""
        layer = self.layers
        if info.isdir():
            return Dir(info.mode & 0o7777, layer)
        if info.isreg():
            return File(info.mode & 0o7777, layer)
        if info.issym():
            if not info.linkname or len(info.linkname) >= PATH_MAX or "\0" in info.linkname:
                return None  # symlink(2) refuses it
            return Symlink(info.linkname, layer)
        if info.islnk():
            source = _clean(info.linkname)
            found = self._resolve(source, follow_last=False, charge=True).node if source else None
            if found is None or isinstance(found, Dir):
                return None  # link(2) refuses it
            return File(found.mode, layer) if isinstance(found, File) else \
                Symlink(found.target, layer) if isinstance(found, Symlink) else Other(found.kind, layer)
        if info.type in _OTHER:
            return Other(_OTHER[info.type], layer)
        return None  # a type containerd does not unpack

    def _resolve(self, parts: list[str], *, create: bool = False, follow_last: bool = True, charge: bool = False,
                 mounts: Collection[tuple[str, ...]] = (), above: Collection[tuple[str, ...]] = ()) -> Lookup:
        """Walk `parts` from the root. `create`: make missing directories (a layer's entry's parents),
        stamped with the current layer like every directory walked through."""
        charge = charge or create
        stack, names = [self.root], []
        todo = list(reversed(parts))
        links = 0
        deep = max(map(len, mounts), default=0)  # no path deeper than a mount point is one or above one

        def here() -> str:
            return _path((*names, name))

        while todo:
            name = todo.pop()
            if charge:
                self._charge(1)
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                    names.pop()
                continue
            if len(names) < deep and (*names, name) in mounts:
                return Lookup(here(), None, mount=here())
            node = stack[-1].children.get(name)
            if node is None:
                if len(names) < deep and (*names, name) in above:
                    return Lookup(here(), None, mount=here())
                if not create:
                    return Lookup(here(), None, ENOENT)
                node = stack[-1].children[name] = Dir(0o755, self.layers)
                self._added(1)
            if isinstance(node, Symlink) and (todo or follow_last):
                links += 1
                if links > MAX_SYMLINKS:
                    return Lookup(here(), None, ELOOP)
                if not node.target:
                    return Lookup(here(), None, ENOENT)
                if node.target.startswith("/"):
                    del stack[1:]
                    names.clear()
                target = node.target.split("/")
                if target[-1] == "":
                    target[-1] = "."
                todo.extend(reversed(target))
                continue
            if isinstance(node, Dir):
                if create:
                    node.layer = self.layers
                stack.append(node)
                names.append(name)
                continue
            return Lookup(here(), None, ENOTDIR) if todo else Lookup(here(), node)
        return Lookup(_path(names), stack[-1])

    def _seal(self, top: Dir) -> None:
        """An opaque whiteout: remove below `top` all that lower layers left, keeping this layer's."""
        layer, todo = self.layers, [top]
        while todo:
            directory = todo.pop()
            self._charge(1)
            if directory.sealed == layer:
                continue  # all below it is this layer's already
            directory.sealed = layer
            for name, child in list(directory.children.items()):
                if child.layer != layer:
                    self._remove(directory, name)
                elif isinstance(child, Dir):
                    todo.append(child)

    def _remove(self, directory: Dir, name: str) -> None:
        node = directory.children.pop(name, None)
        if node is None:
            return
        count, todo = 0, [node]
        while todo:
            n = todo.pop()
            count += 1
            if isinstance(n, Dir):
                todo.extend(n.children.values())
        self._charge(count)
        self.nodes -= count

    def _added(self, count: int) -> None:
        self.nodes += count
        if self.nodes > self.max_nodes:
            raise ImageError(f"the image has more than {self.max_nodes} files, more than arkd looks through")

    def _charge(self, steps: int) -> None:
        self._steps += steps
        if self._steps > self.max_steps:
            raise ImageError(f"the image's file tree took more than {self.max_steps} steps to build "
                             f"(too many files or symbolic links)")


def tree_from_layers(layers: Iterable[Iterable[tarfile.TarInfo]], **limits: int) -> FileTree:
    """The tree of these layers, lowest first."""
    tree = FileTree(**limits)
    for layer in layers:
        tree.apply(layer)
    return tree


def open_layer(fileobj: IO[bytes] | Any) -> tarfile.TarFile:
    """A layer blob (an object with read(n)) as a streamed TarFile: uncompressed, gzip, or zstd where
    this Python reads it; its metadata headers bounded. The TarFile reads lazily; iterate it once."""
    head = b""
    while len(head) < 6:
        chunk = fileobj.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    stream: Any = _Prefixed(head, fileobj)
    if head.startswith(b"\x1f\x8b"):
        # Not tarfile's "r|gz": it copies all it has decompressed on every 512-byte read, which is
        # quadratic on a layer of well-compressed headers. GzipFile decompresses as much as is read.
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    elif head.startswith(b"\x28\xb5\x2f\xfd"):
        if not ZSTD:
            raise ImageError("the image has a zstd-compressed layer, which this Python cannot read")
        from compression import zstd  # type: ignore[import-not-found]
        stream = zstd.ZstdFile(stream)
    elif head.startswith((b"BZh", b"\xfd7zXZ\x00")):
        raise ImageError("the image has a bzip2- or xz-compressed layer, which OCI images do not use")
    try:
        return tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo, encoding="utf-8",
                            errors="surrogateescape")
    except BridgeError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError, zlib.error) as e:
        raise ImageError(f"a layer of the image is not a readable tar archive: {e}") from None


def _entries(layer: Iterable[tarfile.TarInfo]) -> Iterator[tarfile.TarInfo]:
    if not isinstance(layer, tarfile.TarFile):
        yield from layer
        return
    # TarFile keeps every member it has read, even streaming: a layer of millions of entries would
    # hold them all. Read one at a time and forget it.
    last = None
    while True:
        try:
            info = layer.next()
        except tarfile.ReadError:
            # A layer may end right after its last file's content, without the padding and the
            # end-of-archive blocks (umoci writes such layers): containerd's reader (Go's
            # archive/tar) takes that as the end, and so does this one. An end inside a file's
            # content is an error there, and here.
            if last is not None and getattr(layer.fileobj, "pos", -1) >= last.offset_data + last.size:
                return
            raise
        if info is None:
            return
        layer.members.clear()
        last = info
        yield info


def _clean(name: str) -> list[str] | None:
    """A tar entry's name as components below the root: leading "/" and "./" dropped, ".." resolved
    lexically and never above the root (as containerd cleans names). None if longer than PATH_MAX."""
    if len(name) >= PATH_MAX:
        return None
    parts: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return parts


def _creatable(parts: list[str]) -> bool:
    return all(len(p.encode("utf-8", "surrogateescape")) <= NAME_MAX and "\0" not in p for p in parts)


def _path(parts: Iterable[str]) -> str:
    return "/" + "/".join(parts)


class _Prefixed:
    """A stream with bytes already read put back in front."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a pax or GNU long-name header whole, whatever size it claims, and GNU sparse
    maps as long as they go on: refuse those before they are read."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META:
            if self.size > MAX_META_HEADER:
                raise ImageError(f"a layer of the image has a {self.size}-byte metadata header, more than "
                                 f"{MAX_META_HEADER} bytes")
            if self.type == tarfile.XGLTYPE:
                total = getattr(tarfile_, "_ark_global", 0) + self.size
                if total > MAX_GLOBAL_HEADERS:
                    raise ImageError(f"a layer of the image has more than {MAX_GLOBAL_HEADERS} bytes of global headers")
                tarfile_._ark_global = total  # type: ignore[attr-defined]
        elif self.type == tarfile.GNUTYPE_SPARSE:
            raise ImageError("a layer of the image has a GNU sparse file, which arkd does not read")
        depth = getattr(tarfile_, "_ark_depth", 0)
        if depth >= MAX_HEADER_CHAIN:
            raise ImageError(f"a layer of the image has more than {MAX_HEADER_CHAIN} headers for one entry")
        tarfile_._ark_depth = depth + 1  # type: ignore[attr-defined]
        try:
            return super()._proc_member(tarfile_)  # type: ignore[misc]
        finally:
            tarfile_._ark_depth = depth  # type: ignore[attr-defined]

    def _proc_gnusparse_10(self, next: Any, pax_headers: Any, tarfile_: Any) -> None:
        raise ImageError("a layer of the image has a GNU sparse file, which arkd does not read")
