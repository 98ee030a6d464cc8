"""arkd on the local site: its configuration for the local cluster, RBAC, and the daemon process."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .cluster import Cluster
from .processes import stop

REPO = Path(__file__).resolve().parents[1]


def bridge_config(cluster: Cluster, workdir: Path, vos: dict[str, list[str]], **overrides: Any) -> dict[str, Any]:
    """A bridge.yaml for the local cluster: one VO per entry of `vos` (name -> local users)."""
    config: dict[str, Any] = {
        "socket": str(workdir / "arkd.sock"),
        "kubeconfig": str(cluster.make_kubeconfig("arkd", "arkd", [])),
        "controldir": str(workdir / "control"),
        "session_roots": [str(workdir / "sessions")],
        "image_pull_grace_seconds": 5,
        "defaults": {"memory_mb": 256, "walltime_seconds": 600},
        "limits": {"max_count": 2, "max_memory_mb": 4096, "max_walltime_seconds": 3600},
        "priority_classes": {"ark-low": 0, "ark-normal": 40, "ark-high": 80},
        "queues": {"default": {"vos": list(vos), "node_selector": {"ark.nordugrid.org/queue": "default"}}},
        "vos": {
            vo: {
                "namespace": f"ark-{vo}",
                "users": users,
                "registry": f"{cluster.registry}/vo-{vo}",
                "default_image": "base:1",
                # missing:1 is allowed but never pushed: it exercises image pull failures.
                "images": ["base:1", "missing:1"],
                "runtime_environments": {"ENV/TEST": None},
            }
            for vo, users in vos.items()
        },
    }
    config.update(overrides)
    return config


def apply_site_manifests(cluster: Cluster, config_path: Path) -> None:
    """Namespaces, PriorityClasses and arkd's RBAC, as `arc-bridge manifests` prints them."""
    manifests = subprocess.run(
        [sys.executable, "-m", "arc_bridge.cli", "manifests", "--config", str(config_path)],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout
    cluster.kubectl("apply", "-f", "-", input=manifests)


def install_lrms(dest: Path) -> None:
    """The LRMS scripts and the stdlib-only client, world-readable as on a real CE."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "arc_bridge.cli", "install-lrms", "--dest", str(dest)],
                   check=True, capture_output=True, cwd=REPO)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)


@dataclass
class Arkd:
    config_path: Path
    socket: Path
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop(self.process)


def start_arkd(config_path: Path, log: Path, timeout: float = 30, verbose: bool = False) -> Arkd:
    config = yaml.safe_load(config_path.read_text())
    socket = Path(config["socket"])
    socket.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "arc_bridge.daemon", "--config", str(config_path),
                                    *(["--verbose"] if verbose else [])],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    arkd = Arkd(config_path, socket, log, process)
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            arkd.stop()
            raise RuntimeError(f"arkd did not start; its log {log} ends with:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return arkd
