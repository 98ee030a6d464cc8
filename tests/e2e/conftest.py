"""A whole grid site on this machine: real Kubernetes, real arkd, real A-REX 6.17, real ARC client."""

import shutil
import tempfile
from pathlib import Path

import pytest

from localsite.site import running_grid_site


@pytest.fixture(scope="module")
def grid_site(cluster):
    work = Path(tempfile.mkdtemp(prefix="ark-e2e-", dir="/tmp"))
    work.chmod(0o755)
    try:
        with running_grid_site(cluster, work) as arex:
            yield arex
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def arc(grid_site):
    """The ARC command-line client with a proxy for the site's grid user."""
    return grid_site.client()
