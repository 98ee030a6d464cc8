"""Salt's own check of a written pillar, before any host sees it: masterless salt-call renders,
as each host's highstate would, the states its roles select, every one of which starts with
salt/ark/map.jinja. A value Salt would refuse is refused here, with Salt's message naming its
pillar key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .errors import ArkError

# Where tools/setup-host installs Salt when the machine has none of its own.
FALLBACK_SALT_CALL = Path("/var/cache/ark/salt-venv/bin/salt-call")
# What a Debian 12 host reports, fixed so the render does not depend on the machine ark runs on.
GRAINS = {
    "os": "Debian",
    "os_family": "Debian",
    "osfinger": "Debian-12",
    "osmajorrelease": 12,
    "oscodename": "bookworm",
    "init": "systemd",
    "kernel": "Linux",
    "cpuarch": "x86_64",
}
# map.jinja's messages: "pillar ark:KEY: what is wrong".
PILLAR_ERROR = re.compile(r"pillar ark:[^\n]*")
TIMEOUT = 300.0


class RenderError(ArkError):
    """Salt refuses the pillar of a host."""


def find_salt_call() -> Path | None:
    """salt-call on PATH, else the one tools/setup-host installs; None when there is neither."""
    found = shutil.which("salt-call")
    if found:
        return Path(found)
    return FALLBACK_SALT_CALL if FALLBACK_SALT_CALL.exists() else None


def check_render(pillar_dir: Path, hosts: Sequence[str], salt_dir: Path, salt_call: Path) -> None:
    """Render each host's highstate with the pillar at `pillar_dir`; raise on the first host (in
    the given order) whose render fails."""
    with tempfile.TemporaryDirectory(prefix="ark-render-") as workdir, \
            ThreadPoolExecutor(max_workers=min(len(hosts), os.cpu_count() or 2)) as pool:
        errors = list(pool.map(lambda host: render_error(pillar_dir, host, salt_dir, salt_call, Path(workdir)), hosts))
    failed = [(host, error) for host, error in zip(hosts, errors) if error]
    if failed:
        (host, error), more = failed[0], len(failed) - 1
        raise RenderError(f"host {host}: {error}" + (f" ({more} more hosts fail too)" if more else ""))


def write_minion_config(confdir: Path, minion_id: str, salt_dir: Path, pillar_dir: Path) -> None:
    """A masterless minion in `confdir` (its config, cache and root all inside it) that renders
    `salt_dir` with `pillar_dir` as a Debian 12 host would, whatever machine runs it."""
    minion = {
        "id": minion_id,
        "file_client": "local",
        "root_dir": str(confdir / "root"),
        "file_roots": {"base": [str(salt_dir)]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "grains": GRAINS,
        "log_level_logfile": "quiet",
    }
    (confdir / "minion").write_text(yaml.safe_dump(minion))


def render_error(pillar_dir: Path, host: str, salt_dir: Path, salt_call: Path, workdir: Path) -> str | None:
    """What Salt says is wrong with this host's pillar, in one line; None if its states render."""
    confdir = workdir / host
    confdir.mkdir()
    write_minion_config(confdir, host, salt_dir, pillar_dir)
    # Without --retcode-passthrough a render error exits 0.
    argv = [str(salt_call), "--local", "--retcode-passthrough", "-c", str(confdir), "--out=json",
            "state.show_highstate"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"salt-call did not finish rendering in {TIMEOUT:.0f} s"
    except OSError as e:
        raise ArkError(f"cannot run {salt_call}: {e.strerror}") from None
    if proc.returncode == 0:
        return None
    try:
        text = "\n".join(map(str, json.loads(proc.stdout)["local"]))
    except (ValueError, KeyError, TypeError):
        text = proc.stdout + proc.stderr
    match = PILLAR_ERROR.search(text)
    if match:
        return match.group(0).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"salt-call exited with {proc.returncode}: {lines[0] if lines else 'no output'}"
