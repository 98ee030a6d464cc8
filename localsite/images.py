"""Container images for the local site: the pod sandbox ("pause") image and a VO base image.

Both are built as OCI layouts with umoci and cached under IMAGE_CACHE, keyed by CONTENT_VERSION,
so only the first run pays for debootstrap. The VO images a site's tests push are that base plus a
one-file layer naming the image, so a job can tell which image it got.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

# Bump when the content of an image changes, so stale cached layouts are not reused.
CONTENT_VERSION = "1"
IMAGE_CACHE = Path("/var/cache/ark/images")
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
# Tools a VO payload may expect beyond minbase (which already brings bash, coreutils, sed, grep,
# findutils and perl-base); GNU time lets jobs report their own resource use.
VO_BASE_EXTRA_PACKAGES = ["time"]
# Every layout stores its single image under this tag.
LAYOUT_TAG = "latest"


def debian_mirror(sources: Path = DEBIAN_SOURCES) -> str:
    """The machine's own Debian mirror: the URIs of the stanza that serves SUITE (not security)."""
    for stanza in sources.read_text().split("\n\n"):
        fields = dict(
            line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
        )
        if SUITE in fields.get("Suites", "").split() and "URIs" in fields:
            return fields["URIs"].split()[0]
    raise RuntimeError(f"no URIs line for suite {SUITE} in {sources}")


def pause_layout(pause_binary: Path, progress: Callable[[str], None] = print) -> Path:
    """OCI layout of the sandbox image: a root filesystem holding only the static /pause."""

    def fill(rootfs: Path) -> None:
        shutil.copy2(pause_binary, rootfs / "pause")

    return _cached_layout("pause", fill, config=["--config.entrypoint", "/pause"], progress=progress)


def vo_base_layout(progress: Callable[[str], None] = print) -> Path:
    """OCI layout of the VO base image: a Debian minbase root filesystem made by debootstrap."""

    def fill(rootfs: Path) -> None:
        include = ",".join(VO_BASE_EXTRA_PACKAGES)
        _run(["debootstrap", "--variant=minbase", f"--include={include}", SUITE, str(rootfs), debian_mirror()])
        # Package caches and lists only make the image bigger; the image never runs apt.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()

    # Like Debian's own images: no entrypoint, a shell as default command.
    return _cached_layout("vo-base", fill, config=["--config.cmd", "/bin/sh"], progress=progress)


def vo_image_layout(tag: str, progress: Callable[[str], None] = print) -> Path:
    """The VO base image with one more layer: /etc/ark-image holding `tag` (e.g. "tools:2"), so a
    job can tell which of a VO's images it runs in."""
    base = vo_base_layout(progress)
    layout = IMAGE_CACHE / f"v{CONTENT_VERSION}" / f"vo-{tag.replace(':', '-')}"
    if (layout / "index.json").exists():
        return layout
    with tempfile.TemporaryDirectory(dir=layout.parent, prefix=f".{layout.name}-") as tmp:
        building, marker = Path(tmp) / "layout", Path(tmp) / "ark-image"
        marker.write_text(f"{tag}\n")
        marker.chmod(0o644)
        shutil.copytree(base, building)
        _run(["umoci", "insert", "--image", f"{building}:{LAYOUT_TAG}", str(marker), "/etc/ark-image"])
        _run(["umoci", "gc", "--layout", str(building)])
        _publish_layout(building, layout)
    return layout


def _cached_layout(
    name: str, fill: Callable[[Path], None], *, config: list[str], progress: Callable[[str], None]
) -> Path:
    """Return IMAGE_CACHE/v<CONTENT_VERSION>/<name>, building it with `fill(rootfs)` if missing.

    `config` are `umoci config` options (entrypoint or command). The layout is built in a
    temporary directory beside its final place and renamed at the end, so an interrupted build
    never leaves a half-made layout that looks cached.
    """
    layout = IMAGE_CACHE / f"v{CONTENT_VERSION}" / name
    if (layout / "index.json").exists():
        return layout
    progress(f"==> building image {name} (cached afterwards in {layout})")
    layout.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=layout.parent, prefix=f".{name}-") as tmp:
        building, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        image = f"{building}:{LAYOUT_TAG}"
        _run(["umoci", "init", "--layout", str(building)])
        _run(["umoci", "new", "--image", image])
        _run(["umoci", "unpack", "--image", image, str(bundle)])
        fill(bundle / "rootfs")
        _run(["umoci", "repack", "--image", image, str(bundle)])
        _run(["umoci", "config", "--image", image, *config])
        _run(["umoci", "gc", "--layout", str(building)])
        _publish_layout(building, layout)
    return layout


def _publish_layout(building: Path, layout: Path) -> None:
    try:
        building.rename(layout)
    except OSError:
        if not (layout / "index.json").exists():
            raise
        # Another process built the same content meanwhile; its copy is as good as ours.


def _run(cmd: list[str]) -> None:
    """Run a build step; on failure the exception carries the step's own output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stderr + result.stdout)[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{output}")
