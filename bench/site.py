"""The site a benchmark runs on: its own, deployed as an admin deploys one, removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from localsite.saltsite import SaltSite, SitePlan, push_site_images, running_salt_site


@contextlib.contextmanager
def bench_site(plan: SitePlan, pillar: dict[str, Any], log: Callable[[str], None]) -> Iterator[tuple[SaltSite, Path]]:
    """`plan` installed with ark init + ark deploy (`pillar` over the example site's) and the VO
    images pushed; the site and its work directory for the block. Exits naming the failure if
    the deploy fails."""
    work = Path(tempfile.mkdtemp(prefix=f"ark-{plan.name}-", dir="/tmp"))
    work.chmod(0o755)
    log(f"==> site {plan.name} in {work}")
    try:
        with running_salt_site(plan, work, progress=log, pillar=pillar) as site:
            if not site.deployed.ok:
                sys.exit("ark deploy failed:\n" + "\n".join(site.deployed.errors))
            push_site_images(site, work, progress=log)
            yield site, work
    finally:
        shutil.rmtree(work, ignore_errors=True)
