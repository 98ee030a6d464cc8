"""The job model: what a GRAMI file asks for, checked against the site's limits.

Pure functions only; file system checks (does the session directory really belong to the caller)
happen in the service, which owns all I/O.
"""

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .config import SAFE_PATH, Config
from .errors import JobRejected

# ARC job ids are random alphanumeric strings; anything else never came from A-REX.
GRID_ID = re.compile(r"^[A-Za-z0-9]{1,63}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class RuntimeEnvironment:
    name: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class JobRequest:
    grid_id: str
    session_dir: PurePosixPath
    queue: str
    count: int
    memory_mb: int  # per slot, as ARC counts it
    disk_mb: int  # scratch the job asks for (xRSL disk, ADL DiskSpaceRequirement); 0: none given
    whole_node: bool  # xRSL exclusiveexecution: the job gets a node of its own
    walltime_seconds: int
    priority: int
    runtime_environments: tuple[RuntimeEnvironment, ...]
    job_name: str


def job_from_grami(fields: dict[str, str], config: Config) -> JobRequest:
    grid_id = _required(fields, "gridid")
    if not GRID_ID.match(grid_id):
        raise JobRejected(f"job id {grid_id!r} is not an ARC job id (letters and digits only)")

    session_dir = _session_dir(_required(fields, "directory"), grid_id, config)

    queue = _required(fields, "queue")
    if queue not in config.queues:
        raise JobRejected(f"queue {queue!r} does not exist here (queues: {', '.join(sorted(config.queues))})")

    limits = config.limits
    count = _number(fields, "count", "slot count", 1, limits.max_count, default=1)
    if _number(fields, "numnodes", "node count", 0, 10**6, default=1) > 1:
        raise JobRejected("multi-node jobs are not supported: a job runs in one pod, ask for count only")
    memory = _number(fields, "memory", "memory (MB per slot)", 1, limits.max_memory_mb // count,
                     default=limits.default_memory_mb)
    max_wall = config.queues[queue].max_walltime_seconds
    wall_default = limits.default_walltime_seconds
    if not fields.get("joboption_walltime") and fields.get("joboption_cputime"):
        # ARC's shell backends bound wall time by CPU time when only the latter is given.
        cputime = _number(fields, "cputime", "CPU time (s)", 1, max_wall * count, default=0)
        wall_default = max(cputime // count, 1)
    disk = _number(fields, "disk", "disk (MB)", 1, limits.max_disk_mb, default=0)
    walltime = _number(fields, "walltime", "wall time (s)", 1, max_wall, default=min(wall_default, max_wall))
    priority = _number(fields, "priority", "priority", 0, 100, default=50)

    return JobRequest(
        grid_id=grid_id,
        session_dir=session_dir,
        queue=queue,
        count=count,
        memory_mb=memory,
        disk_mb=disk,
        whole_node=fields.get("joboption_exclusivenode", "") == "true",
        walltime_seconds=walltime,
        priority=priority,
        runtime_environments=_runtime_environments(fields),
        job_name=fields.get("joboption_jobname", "")[:200],
    )


def _required(fields: dict[str, str], key: str) -> str:
    value = fields.get(f"joboption_{key}", "")
    if not value:
        raise JobRejected(f"GRAMI has no joboption_{key}")
    return value


def _number(fields: dict[str, str], key: str, what: str, low: int, high: int, default: int) -> int:
    raw = fields.get(f"joboption_{key}", "")
    if raw == "":
        return default
    if not _NUMBER.match(raw) or not low <= int(raw) <= high:
        raise JobRejected(f"{what} must be a whole number from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def _session_dir(raw: str, grid_id: str, config: Config) -> PurePosixPath:
    if len(raw) > 4096 or not SAFE_PATH.match(raw):
        raise JobRejected(f"session directory {raw[:80]!r} is not a plain absolute path")
    path = PurePosixPath(raw)
    if ".." in path.parts or str(path) != raw.rstrip("/") or "//" in raw:
        raise JobRejected(f"session directory {raw[:80]!r} is not a normalised path")
    if path.name != grid_id or path.parent not in config.session_roots:
        roots = ", ".join(str(r) for r in config.session_roots)
        raise JobRejected(f"session directory {raw[:80]!r} is not <session root>/{grid_id} (roots: {roots})")
    return path


def _runtime_environments(fields: dict[str, str]) -> tuple[RuntimeEnvironment, ...]:
    rtes = []
    i = 0
    while (name := fields.get(f"joboption_runtime_{i}")) is not None:
        options = []
        j = 1
        while (opt := fields.get(f"joboption_runtime_{i}_{j}")) is not None:
            options.append(opt)
            j += 1
        rtes.append(RuntimeEnvironment(name, tuple(options)))
        i += 1
    return tuple(rtes)
