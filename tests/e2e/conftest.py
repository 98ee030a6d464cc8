"""A whole grid site on this machine: real Kubernetes, real arkd, real A-REX 6.17, real ARC client."""

import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from localsite.arex import running_arex
from localsite.bridge import apply_site_manifests, bridge_config, install_lrms, start_arkd

GRID_USER = "arkuser"
GRID_UID = 20001


@pytest.fixture(scope="module")
def grid_site(cluster):
    work = Path(tempfile.mkdtemp(prefix="ark-e2e-", dir="/tmp"))
    work.chmod(0o755)
    arex_dir = work / "arex"
    lrms = work / "lrms"
    install_lrms(lrms)
    config = bridge_config(cluster, work, {"alpha": [GRID_USER]},
                           # The infoprovider module finds arkd at its default socket.
                           socket="/run/arkd/arkd.sock",
                           controldir=str(arex_dir / "control"),
                           session_roots=[str(arex_dir / "session")])
    config_path = work / "bridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    apply_site_manifests(cluster, config_path)
    arkd = start_arkd(config_path, work / "arkd.log")
    try:
        with running_arex(arex_dir, lrms="kubernetes", unix_user=GRID_USER, uid=GRID_UID,
                          rtes={"ENV/CONTAINER": "", "ENV/TEST": ""},
                          extra_lrms_files={str(p.relative_to(lrms)): p for p in lrms.rglob("*") if p.is_file()},
                          infoprovider_period=2) as arex:
            yield arex
    finally:
        arkd.stop()
        cluster.kubectl("delete", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd", check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def arc(grid_site):
    """The ARC command-line client with a proxy for the site's grid user."""
    return grid_site.client()
