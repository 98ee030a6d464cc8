"""The site's own container images, built for `ark bundle` as OCI layouts and archives.

- pause: the pod sandbox image every node runs (pillar: the registry's ark/pause:3.2), a root
  filesystem holding only a static /pause binary (tools/setup-host builds it from Kubernetes'
  source, beside the Kubernetes binaries).
- vo-base: a VO base image, Debian minbase (debootstrap from the machine's own Debian mirror, as
  its apt sources name it) plus GNU time, no entrypoint and /bin/sh as command, like Debian's own
  images. A VO manager builds the VO's images on it and pushes them to the site registry.

Layouts are built with umoci in a temporary directory beside their final place and renamed at
the end, so an interrupted build never leaves a layout that looks finished; they are cached,
keyed by their inputs, so a second bundle reuses them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ArkError

SUITE = "bookworm"
# Beyond minbase (which has bash, coreutils, sed, grep, findutils, perl-base): GNU time lets jobs
# report their own resource use.
VO_BASE_PACKAGES = ("time",)
# Bump when what a layout holds changes without its inputs changing.
CONTENT_VERSION = "1"
# Every layout holds its one image under this tag.
LAYOUT_TAG = "latest"

Progress = Callable[[str], None]


def debian_mirror(suite: str = SUITE) -> str:
    """The machine's own Debian mirror for `suite`, as its apt sources name it (either format)."""
    result = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"],
                            check=False, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        uri, release, kind = (line.split() + ["", "", ""])[:3]
        if release == suite and kind == "deb":
            return uri
    raise ArkError(f"the machine's apt sources name no mirror for Debian {suite} (apt-get indextargets): "
                   "debootstrap of the VO base image needs one")


def pause_layout(pause_binary: Path, cache: Path, progress: Progress) -> Path:
    """OCI layout of the sandbox image: only the static /pause, as entrypoint."""
    if not pause_binary.is_file():
        raise ArkError(f"{pause_binary}: no pause binary (tools/setup-host builds it beside the Kubernetes "
                       "binaries; give the directory with --kubernetes-bin)")
    key = _key("pause", hashlib.sha256(pause_binary.read_bytes()).hexdigest())

    def fill(rootfs: Path) -> None:
        shutil.copy2(pause_binary, rootfs / "pause")
        (rootfs / "pause").chmod(0o755)

    return _cached_layout(cache, "pause", key, fill, ["--config.entrypoint", "/pause"], progress)


def vo_base_layout(cache: Path, progress: Progress) -> Path:
    """OCI layout of the VO base image: Debian minbase by debootstrap, package caches removed."""
    key = _key("vo-base", SUITE, *VO_BASE_PACKAGES)

    def fill(rootfs: Path) -> None:
        mirror = debian_mirror()
        progress(f"    debootstrap --variant=minbase {SUITE} from {mirror} (about a minute)")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(VO_BASE_PACKAGES)}", SUITE, str(rootfs),
              mirror])
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()

    return _cached_layout(cache, "vo-base", key, fill, ["--config.cmd", "/bin/sh"], progress)


def layout_digest(layout: Path) -> str:
    """The manifest digest the layout's index names for LAYOUT_TAG: what the image is."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as e:
        raise ArkError(f"{layout}: not an OCI image layout ({e})") from None
    for manifest in index.get("manifests", []):
        if manifest.get("annotations", {}).get("org.opencontainers.image.ref.name") == LAYOUT_TAG:
            return manifest["digest"]
    raise ArkError(f"{layout}: the OCI layout has no image tagged {LAYOUT_TAG}")


def write_archive(layout: Path, archive: Path) -> None:
    """The layout's image as an OCI archive (skopeo), written beside and renamed into place."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.partial")
    partial.unlink(missing_ok=True)
    _run(["skopeo", "copy", "--quiet", f"oci:{layout}:{LAYOUT_TAG}", f"oci-archive:{partial}"])
    partial.rename(archive)


def publish_layout(building: Path, layout: Path) -> None:
    """Move a finished layout into place. If another run published the same inputs meanwhile, its
    layout is as good; ours goes with the caller's temporary directory."""
    try:
        building.rename(layout)
    except OSError:
        if not (layout / "index.json").exists():
            raise


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join((CONTENT_VERSION, *parts)).encode()).hexdigest()[:16]


def _cached_layout(cache: Path, name: str, key: str, fill: Callable[[Path], None], config: list[str],
                   progress: Progress) -> Path:
    """cache/NAME-KEY, built by `fill(rootfs)` if missing; layouts of NAME for other inputs go."""
    layout = cache / f"{name}-{key}"
    if (layout / "index.json").exists():
        return layout
    progress(f"    building the image layout {layout.name} (cached in {layout.parent})")
    layout.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=layout.parent, prefix=f".{layout.name}-") as tmp:
        building, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        image = f"{building}:{LAYOUT_TAG}"
        _run(["umoci", "init", "--layout", str(building)])
        _run(["umoci", "new", "--image", image])
        _run(["umoci", "unpack", "--image", image, str(bundle)])
        fill(bundle / "rootfs")
        _run(["umoci", "repack", "--image", image, str(bundle)])
        _run(["umoci", "config", "--image", image, *config])
        _run(["umoci", "gc", "--layout", str(building)])
        publish_layout(building, layout)
    for old in cache.glob(f"{name}-*"):
        if old != layout and old.is_dir():
            shutil.rmtree(old)
    return layout


def _run(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ArkError(f"{argv[0]} is not installed (Debian package {argv[0]})") from None
    if result.returncode != 0:
        tail = " / ".join((result.stderr + result.stdout).strip().splitlines()[-5:])
        raise ArkError(f"{' '.join(argv[:3])} ... failed (exit {result.returncode}): {tail}")
