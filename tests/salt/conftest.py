"""Fixtures for the Salt tests.

Rendering: masterless salt-call against the repository's salt/ tree with a chosen pillar, in a
throwaway config and cache directory, so nothing on the machine running the tests is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ark.pki import make_ca
from ark.render import write_minion_config

REPO = Path(__file__).resolve().parents[2]
SALT_ROOT = REPO / "salt"
SITE_PILLAR = REPO / "pillar"
TEST_PILLAR = Path(__file__).resolve().parent / "pillar"
SALT_CALL = Path(os.environ.get("ARK_SALT_CALL", "/var/cache/ark/salt-venv/bin/salt-call"))

MINION_ID = "ark-render-test"


@dataclass
class SaltRun:
    returncode: int
    output: str  # stdout and stderr, for assertions on messages and for failure reports
    result: Any  # the minion's return parsed from --out=json, None if there is none

    @property
    def rendered(self) -> bool:
        return self.returncode == 0 and isinstance(self.result, dict)


class SaltRenderer:
    """Runs salt-call --local with the example site pillar plus overlays from tests/salt/pillar.

    Later overlays override earlier ones key by key (Salt's pillar merge), so a test pillar holds
    only what differs from the example site.
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.generated = workdir / "generated"
        self.generated.mkdir()
        self._generate_ca_overlays()

    def _generate_ca_overlays(self) -> None:
        """Overlays holding a site CA, made afresh rather than kept in the tree: `site_ca`, the
        CA a site with split roles gives every host, and `bad_ca_mismatch`, its certificate with
        another key."""
        site = make_ca(self.workdir / "site-ca", "ark-site-ca")
        other = make_ca(self.workdir / "other-ca", "ark-site-ca")
        for name, cert, key in (("site_ca", site.cert, site.key), ("bad_ca_mismatch", site.cert, other.key)):
            ca = {"cert": cert.read_text(), "key": key.read_text()}
            (self.generated / f"{name}.sls").write_text(yaml.safe_dump({"ark": {"pki": {"ca": ca}}}))

    def overlay(self, name: str) -> Path:
        generated = self.generated / f"{name}.sls"
        return generated if generated.exists() else TEST_PILLAR / f"{name}.sls"

    def config(self, overlays: tuple[str, ...]) -> Path:
        """A fresh config and cache directory per call, so calls can run side by side."""
        confdir = Path(tempfile.mkdtemp(prefix="minion-", dir=self.workdir))
        pillar = confdir / "pillar"
        pillar.mkdir()
        (pillar / "site.sls").symlink_to(SITE_PILLAR / "site.sls")
        for name in overlays:
            (pillar / f"{name}.sls").symlink_to(self.overlay(name))
        (pillar / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["site", *overlays]}}))
        write_minion_config(confdir, MINION_ID, SALT_ROOT, pillar)
        return confdir

    def __call__(self, overlays: tuple[str, ...], *args: str) -> SaltRun:
        confdir = self.config(overlays)
        # Without --retcode-passthrough a render error exits 0.
        cmd = [str(SALT_CALL), "--local", "--retcode-passthrough", "-c", str(confdir), "--out=json", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        try:
            result = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            result = None
        return SaltRun(proc.returncode, proc.stdout + proc.stderr, result)


@pytest.fixture(scope="session")
def salt_render(tmp_path_factory) -> SaltRenderer:
    if not SALT_CALL.exists():
        pytest.skip(f"Salt is not installed at {SALT_CALL}: run tools/setup-host")
    return SaltRenderer(tmp_path_factory.mktemp("salt-render"))
