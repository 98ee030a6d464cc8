"""The bridge configuration: one YAML file, validated completely at load time.

Every error names the key that is wrong (`vos.alpha.images[1]: ...`), because the file is
rendered by Salt from pillar and an admin has to find the pillar key behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import ConfigError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A reference inside a VO's repository prefix: name[:tag], no registry, no '..'.
IMAGE_REF = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
REGISTRY_PREFIX = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# Host paths no VO mount may be, lie under or contain: the node's own configuration, kernel
# interfaces, runtime state, credentials and logs. The control directory and session roots join them.
DENIED_HOST_PATHS = tuple(PurePosixPath(p) for p in (
    "/etc", "/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/root", "/home", "/var/log",
    "/var/lib/kubelet", "/var/lib/containerd", "/var/lib/etcd", "/var/lib/docker-registry", "/opt/ark",
    "/usr/share/arc", "/tmp", "/var/tmp"))
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+@%,:=-]*$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class VO:
    name: str
    namespace: str
    users: tuple[str, ...]
    registry: str
    default_image: str
    images: tuple[str, ...]
    runtime_environments: dict[str, str | None]
    max_priority: int = 100  # the highest ARC priority (0-100) the VO's jobs are scheduled with
    mounts: tuple[PurePosixPath, ...] = ()  # host paths (software areas, /cvmfs) its pods see read-only

    def image_ref(self, image: str) -> str:
        return f"{self.registry}/{image}"


@dataclass(frozen=True)
class Queue:
    name: str
    vos: tuple[str, ...]
    node_selector: dict[str, str]
    max_walltime_seconds: int
    # The memory limit is the job's memory times this; None: no limit (only the request), so page
    # cache never counts against the job, and a node short of memory evicts the largest user.
    memory_limit_factor: float | None = 1.0
    # True: a job uses at most the CPUs it asked for; False: it may use idle ones beyond them.
    cpu_limit: bool = True
    # Scratch space (TMPDIR, node-local) of a job that asks for no disk; 0: unbounded, none
    # requested.
    scratch_mb: int = 0


@dataclass(frozen=True)
class SessionVolume:
    """How the session directory reaches the pod: the node's own path, or a shared volume."""

    type: str  # "hostPath" or "persistentVolumeClaim"
    claim_name: str = ""


@dataclass(frozen=True)
class ImageCheck:
    """How arkd reads the site registry to refuse, at submit, an image without /bin/sh."""

    docker_config: Path  # the pull account, as a Docker config.json
    ca_file: Path  # the CA the registry's certificate is signed by


@dataclass(frozen=True)
class Limits:
    max_count: int
    max_memory_mb: int
    max_walltime_seconds: int
    default_memory_mb: int
    default_walltime_seconds: int
    max_disk_mb: int = 1024 * 1024


@dataclass(frozen=True)
class Config:
    socket: Path
    kubeconfig: Path | None
    controldir: Path
    session_roots: tuple[PurePosixPath, ...]
    session_volume: SessionVolume
    image_rte: str
    image_pull_grace_seconds: int
    # How long a job's pod stays bound to a node that stopped answering before Kubernetes gives it
    # up (the tolerationSeconds of the not-ready and unreachable taints) and arkd fails the job.
    node_lost_seconds: int
    # None: no check at submit; an image without a shell then fails its job when the pod starts.
    image_check: ImageCheck | None
    limits: Limits
    priority_classes: dict[str, int]
    queues: dict[str, Queue]
    vos: dict[str, VO]

    def vo_of_user(self, user: str) -> VO | None:
        for vo in self.vos.values():
            if user in vo.users:
                return vo
        return None


def load_config(path: Path) -> Config:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}") from None
    return parse_config(raw)


def parse_config(raw: Any) -> Config:
    r = _Reader(raw, "")
    limits = r.section("limits")
    defaults = r.section("defaults")
    lim = Limits(
        max_count=limits.int("max_count", 64),
        max_memory_mb=limits.int("max_memory_mb", 256 * 1024),
        max_walltime_seconds=limits.int("max_walltime_seconds", 14 * 86400),
        default_memory_mb=defaults.int("memory_mb", 2048),
        default_walltime_seconds=defaults.int("walltime_seconds", 86400),
        max_disk_mb=limits.int("max_disk_mb", 1024 * 1024),
    )
    sv = r.section("session_volume")
    volume = SessionVolume(type=sv.choice("type", ("hostPath", "persistentVolumeClaim"), "hostPath"))
    if volume.type == "persistentVolumeClaim":
        volume = SessionVolume(volume.type, sv.dns_label("claim_name"))

    vos = {name: _vo(name, r.section("vos").section(name)) for name in r.section("vos").keys(required=True)}
    seen: dict[str, str] = {}
    for vo in vos.values():
        for user in vo.users:
            if user in seen:
                raise ConfigError(f"vos.{vo.name}.users: {user!r} is already a user of VO {seen[user]!r}")
            seen[user] = vo.name

    queues = {}
    for name in r.section("queues").keys(required=True):
        q = r.section("queues").section(name)
        qvos = q.str_list("vos")
        for v in qvos:
            if v not in vos:
                raise ConfigError(f"queues.{name}.vos: unknown VO {v!r} (defined: {', '.join(sorted(vos))})")
        queues[name] = Queue(
            name=name,
            vos=tuple(qvos),
            node_selector=q.labels("node_selector"),
            max_walltime_seconds=q.int("max_walltime_seconds", lim.max_walltime_seconds),
            memory_limit_factor=q.factor("memory_limit_factor", 1.0),
            cpu_limit=q.choice("cpu_limit", ("enforced", "request_only"), "enforced") == "enforced",
            scratch_mb=q.int("scratch_mb", 0, minimum=0, maximum=lim.max_disk_mb),
        )

    pcs = r.section("priority_classes")
    priority_classes = {name: pcs.int(name, minimum=0, maximum=100) for name in pcs.keys()}
    for name in priority_classes:
        if not DNS_LABEL.match(name):
            raise ConfigError(f"priority_classes: {name!r} is not a valid Kubernetes name")

    roots = tuple(PurePosixPath(p) for p in r.str_list("session_roots"))
    for i, root in enumerate(roots):
        if not root.is_absolute() or ".." in root.parts or str(root) == "/":
            raise ConfigError(f"session_roots[{i}]: {str(root)!r} must be an absolute directory below /")

    denied = (*DENIED_HOST_PATHS, PurePosixPath(r.str("controldir")), *roots)
    for vo in vos.values():
        for i, mount in enumerate(vo.mounts):
            clash = next((d for d in denied if mount == d or d in mount.parents or mount in d.parents), None)
            if clash is not None:
                raise ConfigError(f"vos.{vo.name}.mounts[{i}]: {str(mount)!r} would expose {clash} of the node "
                                  f"to the VO's jobs; mount a directory of its own, like /cvmfs")

    check = r.section("image_check")
    image_check = None
    if check.keys():
        image_check = ImageCheck(docker_config=Path(check.str("docker_config")), ca_file=Path(check.str("ca_file")))

    kubeconfig = r.str("kubeconfig", "")
    return Config(
        socket=Path(r.str("socket", "/run/arkd/arkd.sock")),
        kubeconfig=Path(kubeconfig) if kubeconfig else None,
        controldir=Path(r.str("controldir")),
        session_roots=roots,
        session_volume=volume,
        image_rte=r.str("image_rte", "ENV/CONTAINER"),
        image_pull_grace_seconds=r.int("image_pull_grace_seconds", 300, minimum=0),
        node_lost_seconds=r.int("node_lost_seconds", 300, minimum=0),
        image_check=image_check,
        limits=lim,
        priority_classes=priority_classes,
        queues=queues,
        vos=vos,
    )


def _vo(name: str, r: "_Reader") -> VO:
    if not DNS_LABEL.match(name):
        raise ConfigError(f"vos: {name!r} is not a valid VO name (lower-case letters, digits, '-')")
    registry = r.str("registry")
    if not REGISTRY_PREFIX.match(registry):
        raise ConfigError(f"vos.{name}.registry: {registry!r} is not a registry/repository prefix like host:5000/{name}")
    images = r.str_list("images")
    for i, image in enumerate(images):
        if not IMAGE_REF.match(image):
            raise ConfigError(f"vos.{name}.images[{i}]: {image!r} is not an image name like base:1")
    default = r.str("default_image")
    if default not in images:
        raise ConfigError(f"vos.{name}.default_image: {default!r} is not listed in vos.{name}.images")
    rtes_reader = r.section("runtime_environments")
    rtes: dict[str, str | None] = {}
    for rte in rtes_reader.keys():
        image = rtes_reader.optional_str(rte)
        if image is not None and image not in images:
            raise ConfigError(f"vos.{name}.runtime_environments.{rte}: image {image!r} is not listed in vos.{name}.images")
        rtes[rte] = image
    return VO(
        name=name,
        namespace=r.dns_label("namespace", f"ark-{name}"),
        users=tuple(r.str_list("users")),
        registry=registry,
        default_image=default,
        images=tuple(images),
        runtime_environments=rtes,
        max_priority=r.int("max_priority", 100, minimum=0, maximum=100),
        mounts=_mounts(name, r),
    )


def _mounts(vo: str, r: "_Reader") -> tuple[PurePosixPath, ...]:
    raw = r.data.get("mounts") or []
    if not isinstance(raw, list):
        raise ConfigError(f"vos.{vo}.mounts: expected a list of absolute host paths")
    mounts = []
    for i, value in enumerate(raw):
        if not isinstance(value, str) or not SAFE_PATH.match(value) or value.endswith("/") or "//" in value \
                or ".." in PurePosixPath(value).parts or value == "/":
            raise ConfigError(f"vos.{vo}.mounts[{i}]: {value!r} is not a normalised absolute path below /")
        mounts.append(PurePosixPath(value))
    return tuple(mounts)


_MISSING = object()


class _Reader:
    """Typed access to a mapping that knows its own dotted path for error messages."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
        self.data, self.path = data, path

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is _MISSING:
            raise ConfigError(f"{self._key(key)}: required key is missing")
        return default

    def keys(self, required: bool = False) -> list[str]:
        if required and not self.data:
            raise ConfigError(f"{self.path}: at least one entry is required")
        return [str(k) for k in self.data]

    def section(self, key: str) -> "_Reader":
        return _Reader(self.data.get(key), self._key(key))

    def str(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value or any(ord(c) < 32 for c in value):
            raise ConfigError(f"{self._key(key)}: expected a non-empty one-line string, got {value!r}")
        return value

    def optional_str(self, key: str) -> str | None:
        return None if self.data.get(key) is None else self.str(key)

    def int(self, key: str, default: Any = _MISSING, minimum: int = 1, maximum: int = 10**12) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ConfigError(f"{self._key(key)}: expected a whole number from {minimum} to {maximum}, got {value!r}")
        return value

    def factor(self, key: str, default: float) -> float | None:
        """A factor from 1 to 100, or None where the key is given as null ("none")."""
        if key in self.data and self.data[key] is None:
            return None
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 100:
            raise ConfigError(f"{self._key(key)}: expected a number from 1 to 100, or null for none, got {value!r}")
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.str(key, default)
        if value not in choices:
            raise ConfigError(f"{self._key(key)}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def dns_label(self, key: str, default: Any = _MISSING) -> str:
        value = self.str(key, default)
        if not DNS_LABEL.match(value):
            raise ConfigError(f"{self._key(key)}: {value!r} is not a valid Kubernetes name")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self._get(key, _MISSING)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{self._key(key)}: expected a non-empty list")
        return [_Reader({i: v}, self._key(key)).str(i) for i, v in enumerate(value)]

    def labels(self, key: str) -> dict[str, str]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self._key(key)}: expected a mapping of label to value")
        for k, v in value.items():
            if not isinstance(k, str) or not LABEL_KEY.match(k) or not isinstance(v, str) or not LABEL_VALUE.match(v):
                raise ConfigError(f"{self._key(key)}: {k!r}: {v!r} is not a valid Kubernetes label")
        return dict(value)
