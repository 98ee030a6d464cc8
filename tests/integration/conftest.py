"""arkd on the site Salt installs, with the test standing in for A-REX (localsite.cehost)."""

import pytest

from localsite.cehost import CeHost


@pytest.fixture(scope="module")
def site(grid_site):
    with CeHost(grid_site).standing_in_for_arex() as ce:
        yield ce
