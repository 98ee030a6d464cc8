"""Fixtures that start real components: the local Kubernetes cluster and the grid users' accounts."""

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from localsite.users import ensure_user

GRID_USERS = {"ark-alice": 20011, "ark-bob": 20012}


def pytest_collection_modifyitems(items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: starts Kubernetes, A-REX and switches users")
        for item in items:
            if "cluster" in item.keywords or "arex" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def grid_users() -> dict[str, pwd.struct_passwd]:
    """Unprivileged local accounts that grid users are mapped to."""
    for name, uid in GRID_USERS.items():
        ensure_user(name, uid)
    return {name: pwd.getpwnam(name) for name in GRID_USERS}


@pytest.fixture(scope="session")
def cluster():
    """A real single-node Kubernetes 1.20.2 with a registry holding each VO's base image."""
    from localsite.cluster import running_cluster

    workdir = Path(tempfile.mkdtemp(prefix="ark-k8s-", dir="/tmp"))
    try:
        with running_cluster(workdir, node_labels={"ark.nordugrid.org/queue": "default"},
                             vo_images=["vo-alpha/base:1", "vo-beta/base:1"]) as c:
            yield c
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
