"""Local unprivileged accounts that grid users are mapped to."""

import pwd
import subprocess


def ensure_user(name: str, uid: int) -> tuple[int, int]:
    """Create `name` with `uid` and its own group unless it exists; return (uid, gid)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--uid", str(uid), "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid
