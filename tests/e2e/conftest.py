"""The grid user's ARC client, against the all-in-one site that Salt installs (tests/conftest.py)."""

import pytest

from localsite.saltsite import grid_client


@pytest.fixture(scope="module")
def arc(grid_site, tmp_path_factory):
    """The ARC command-line client on this machine, with a proxy for VO alpha's grid user."""
    return grid_client(grid_site, tmp_path_factory.mktemp("arc-client"))
