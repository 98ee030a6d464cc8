"""A whole grid site on this machine: arkd and A-REX (lrms = kubernetes) on a running cluster."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from .arex import Arex, running_arex
from .bridge import apply_site_manifests, bridge_config, install_lrms, start_arkd
from .cluster import Cluster

@contextlib.contextmanager
def running_grid_site(cluster: Cluster, work: Path, *, grid_user: str = "arkuser", uid: int = 20001,
                      progress: Callable[[str], None] = print) -> Iterator[Arex]:
    """arkd first (A-REX's infoprovider asks it at start-up), then A-REX; both stopped on exit."""
    arex_dir = work / "arex"
    lrms = work / "lrms"
    install_lrms(lrms)
    config = bridge_config(cluster, work, {"alpha": [grid_user]},
                           controldir=str(arex_dir / "control"), session_roots=[str(arex_dir / "session")])
    config_path = work / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    progress("==> site: namespaces, PriorityClasses and RBAC from `arc-bridge manifests`")
    apply_site_manifests(cluster, config_path)
    progress(f"==> site: starting arkd (config {config_path}, log {work / 'arkd.log'})")
    arkd = start_arkd(config_path, work / "arkd.log")
    try:
        progress("==> site: starting A-REX with lrms = kubernetes")
        with running_arex(arex_dir, lrms="kubernetes", custom={"socket": config["socket"]},
                          unix_user=grid_user, uid=uid,
                          rtes={"ENV/CONTAINER": "", "ENV/TEST": ""},
                          extra_lrms_files={str(p.relative_to(lrms)): p for p in lrms.rglob("*") if p.is_file()},
                          infoprovider_period=2, progress=progress) as arex:
            yield arex
    finally:
        arkd.stop()
        cluster.kubectl("delete", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd", check=False)
