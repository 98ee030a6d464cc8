"""Image layers built in memory, as registries store them: tar headers, gzip by default."""

import io
import tarfile


def entry(name, kind=tarfile.REGTYPE, mode=0o644, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, target
    return info


def layer(*entries, compression="gz", format=tarfile.PAX_FORMAT):
    """A layer blob: its entries' headers, regular files with one byte of content."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}" if compression else "w", format=format) as tar:
        for info in entries:
            if info.isreg():
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
            else:
                tar.addfile(info)
    return out.getvalue()
