"""Local unprivileged accounts that grid users are mapped to (A-REX refuses root-mapped jobs)."""

import grp
import pwd
import subprocess


def ensure_user(name: str, uid: int) -> tuple[int, int]:
    """Create `name` (uid `uid`, a group of its own) unless it exists; return (uid, gid)."""
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "-g", str(uid), name], check=True, capture_output=True)
        gid = uid
    subprocess.run(["useradd", "-u", str(uid), "-g", str(gid), "-M", "-d", "/nonexistent",
                    "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
    return uid, gid
