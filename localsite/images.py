"""The VO images the test sites' VO manager pushes: the bundle's VO base image (`ark bundle`) with
one more layer, /etc/ark-image naming the image (e.g. "tools:2"), so a job can tell which of its
VO's images it runs in. Built with umoci, cached under IMAGE_CACHE keyed by the base image."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from ark.images import LAYOUT_TAG, publish_layout

IMAGE_CACHE = Path("/var/cache/ark/images")


def vo_image_layout(base_archive: Path, tag: str, removed: tuple[str, ...] = ()) -> Path:
    """An OCI layout of `base_archive` (an OCI archive) plus /etc/ark-image holding `tag`, without
    the `removed` paths (whiteouts in the same layer)."""
    with base_archive.open("rb") as archive:
        base = hashlib.file_digest(archive, "sha256").hexdigest()[:16]
    layout = IMAGE_CACHE / f"vo-{tag.replace(':', '-')}-{base}"
    if (layout / "index.json").exists():
        return layout
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=IMAGE_CACHE, prefix=f".{layout.name}-") as tmp:
        building, marker = Path(tmp) / "layout", Path(tmp) / "ark-image"
        marker.write_text(f"{tag}\n")
        marker.chmod(0o644)
        _run(["skopeo", "copy", "--quiet", f"oci-archive:{base_archive}", f"oci:{building}:{LAYOUT_TAG}"])
        _run(["umoci", "insert", "--image", f"{building}:{LAYOUT_TAG}", str(marker), "/etc/ark-image"])
        for path in removed:
            _run(["umoci", "insert", "--image", f"{building}:{LAYOUT_TAG}", "--whiteout", path])
        _run(["umoci", "gc", "--layout", str(building)])
        publish_layout(building, layout)
    return layout


def _run(cmd: list[str]) -> None:
    """Run a build step; on failure the exception carries the step's own output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{(result.stderr + result.stdout)[-3000:]}")
