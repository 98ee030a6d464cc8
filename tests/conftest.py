"""The grid site the integration and end-to-end tests share: the all-in-one site as Salt installs it.

One Debian host with systemd, on a LAN of its own with no route out, highstated with every role
from the example site's pillar plus TEST_PILLAR below, with the VO images pushed by VO alpha's
manager. It is installed once per test session, on first use, and shut down at the end.
"""

from __future__ import annotations

import os
import sys

import pytest

from localsite.saltsite import ALL_IN_ONE, SaltSite, push_site_images, running_salt_site

# What the tests need beyond the example site: two more accounts of VO alpha (ark-alice and
# ark-bob, one to act and one to be refused), an image that is allowed but never pushed and one
# without a shell, a queue "roomy" that limits neither memory nor CPUs and gives jobs 16 MB of
# scratch (so VO alpha has no LimitRange defaults), a software area VO alpha's jobs see read-only (SOFTWARE, which the site's
# admin provides on the worker), a quota as large as a whole node, pull failures noticed in
# seconds, and A-REX's state published to arcstat every few seconds.
TEST_PILLAR = {
    "vos": {"alpha": {"users": {"ark-alice": 20011, "ark-bob": 20012},
                      "images": ["base:1", "tools:2", "missing:1", "noshell:1"],
                      "limits": {"default_cpu": None, "default_memory": None},
                      "mounts": ["/srv/vo-alpha-software"],
                      "quota": {"cpu": "16", "memory": "64Gi"}}},
    "queues": {"roomy": {"vos": ["alpha"], "node_selector": {"ark.nordugrid.org/queue": "default"},
                         "memory_limit_factor": None, "cpu_limit": "request_only", "scratch_mb": 16}},
    "bridge": {"image_pull_grace_seconds": 5},
    "arex": {"infoprovider_period": 5, "wakeupperiod": 10},
}
SOFTWARE = "/srv/vo-alpha-software"
# On a failure, the tails of these journals of the CE host join the report.
SITE_UNITS = ("arkd", "arc-arex", "arc-arex-ws")
TAIL_LINES = 40


def log(message: str) -> None:
    print(message, file=sys.stderr)


def pytest_collection_modifyitems(items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: boots systemd-nspawn test hosts")
        for item in items:
            if "site" in item.keywords or "host" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def grid_site(tmp_path_factory) -> SaltSite:
    """The all-in-one site, installed by highstate (and a re-apply), with the VO images pushed."""
    work = tmp_path_factory.mktemp("all-in-one")
    with running_salt_site(ALL_IN_ONE, work, progress=log, pillar=TEST_PILLAR) as site:
        # ark deploy fails unless every highstate succeeded and the re-apply changed nothing.
        assert site.deployed.ok, "\n".join(site.deployed.errors)
        push_site_images(site, work, progress=log)
        worker = site.with_role("worker")
        worker.run("mkdir", "-p", SOFTWARE, check=True)
        worker.run("sh", "-c", f"echo 'alpha software 1.0' > {SOFTWARE}/VERSION", check=True)
        yield site


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    site = getattr(item, "funcargs", {}).get("grid_site")
    if report.when == "call" and report.failed and isinstance(site, SaltSite):
        ce = site.with_role("ce")
        for unit in SITE_UNITS:
            journal = ce.run("journalctl", "--no-pager", "-o", "short-precise", "-n", str(TAIL_LINES), "-u", unit)
            report.sections.append((f"journal of {unit} on {ce.name}, last {TAIL_LINES} lines",
                                    journal.stdout or journal.stderr))
        arex_log = ce.root / "var/log/arc/arex.log"
        if arex_log.exists():
            tail = arex_log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            report.sections.append((f"{arex_log.relative_to(ce.root)}, last {TAIL_LINES} lines", "\n".join(tail)))

