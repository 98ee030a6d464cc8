"""A whole grid site on this machine: real Kubernetes, real arkd, real A-REX 6.17, real ARC client."""

import shutil
import tempfile
from pathlib import Path

import pytest

from localsite.site import running_grid_site

# On a failure, the tails of these logs (under the site's work directory) join the report: the
# work directory is removed afterwards, and CI keeps only what the run printed.
SITE_LOGS = ("arkd.log", "arex/log/arex.log", "arex/log/arex-jobs.log")
TAIL_LINES = 40


@pytest.fixture(scope="module")
def site_work():
    work = Path(tempfile.mkdtemp(prefix="ark-e2e-", dir="/tmp"))
    work.chmod(0o755)
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def grid_site(cluster, site_work):
    with running_grid_site(cluster, site_work) as arex:
        yield arex


@pytest.fixture(scope="module")
def arc(grid_site):
    """The ARC command-line client with a proxy for the site's grid user."""
    return grid_site.client()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    work = getattr(item, "funcargs", {}).get("site_work")
    if report.when == "call" and report.failed and work:
        for name in SITE_LOGS:
            log = work / name
            tail = log.read_text(errors="replace").splitlines()[-TAIL_LINES:] if log.exists() else ["(missing)"]
            report.sections.append((f"site log {name}, last {TAIL_LINES} lines", "\n".join(tail)))
