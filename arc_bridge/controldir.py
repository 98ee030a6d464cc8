"""A-REX's control directory: which jobs are in the LRMS, and how their results are handed back.

ARC 6 keeps `job.<ID>.<suffix>` files flat in the control directory; ARC 7 moves them to
`jobs/abc/def/ghi/<rest>/<suffix>`. Both keep job states in `processing/`.

Everything here runs as root on files a grid user may have tampered with. ARC hands a job's
`.local` and status files to the job's owner, and she owns her session directory and its
siblings, so their contents are hints only: a job's owner is the owner of its control files (which
she cannot change), its session directory is `<session root>/<job id>` owned by that same user,
and files written or read on her behalf are opened without following symlinks and must be hers
alone (her uid, one link).
"""

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from .outcome import Outcome

IN_LRMS = {"INLRMS", "CANCELING"}
# States after A-REX has learnt the LRMS result (or had none to learn: no status at all).
PAST_LRMS = {None, "FINISHING", "FINISHED", "DELETED"}

log = logging.getLogger(__name__)
# The .diag keys (lower-cased, as A-REX reads them) whose values arkd always measures for the site;
# CPU time, peak memory and processors replace the job's too where the pod reported them.
SITE_KEYS = {"nodename", "walltime", "lrmsstarttime", "lrmsendtime", "exitcode", "lrmsexitcode", "lrmsmessage"}


class ControlDir:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def arc7(self) -> bool:
        return (self.root / "jobs").is_dir()

    def job_file(self, grid_id: str, suffix: str) -> Path:
        if self.arc7:
            parts = [grid_id[i : i + 3] for i in (0, 3, 6)] + [grid_id[9:]]
            return self.root.joinpath("jobs", *parts, suffix)
        return self.root / f"job.{grid_id}.{suffix}"

    def status_file(self, grid_id: str) -> Path:
        name = f"{grid_id}.status" if self.arc7 else f"job.{grid_id}.status"
        return self.root / "processing" / name

    def state(self, grid_id: str) -> str | None:
        text = read_small(self.status_file(grid_id))
        return None if text is None else text.strip().removeprefix("PENDING:")

    def parse_name(self, name: str) -> tuple[str, str] | None:
        """(job id, suffix) of a file named as this layout names them in a flat directory:
        ARC 6's `job.<ID>.<suffix>` (the control directory and the state directories), ARC 7's
        `<ID>.status` (the state directories); None for any other name."""
        prefix = "" if self.arc7 else "job."
        grid_id, dot, suffix = name.removeprefix(prefix).rpartition(".")
        if not name.startswith(prefix) or not dot or not grid_id or "." in grid_id or not suffix:
            return None
        if self.arc7 and suffix != "status":
            return None
        return grid_id, suffix

    def jobs_in_lrms(self) -> list[str]:
        """Jobs A-REX has handed to the LRMS and still waits for (no lrms_done yet)."""
        try:
            names = os.listdir(self.root / "processing")
        except FileNotFoundError:
            return []
        jobs = []
        for parsed in map(self.parse_name, names):
            if parsed and parsed[1] == "status":
                grid_id = parsed[0]
                if self.state(grid_id) in IN_LRMS and not self.job_file(grid_id, "lrms_done").exists():
                    jobs.append(grid_id)
        return sorted(jobs)

    def is_done(self, grid_id: str) -> bool:
        return self.job_file(grid_id, "lrms_done").exists()

    def owner(self, grid_id: str) -> int | None:
        """The job's local user, as A-REX made it owner of the job's .local; None if not a user."""
        try:
            st = os.lstat(self.job_file(grid_id, "local"))
        except OSError:
            return None
        return st.st_uid if stat.S_ISREG(st.st_mode) and st.st_uid != 0 else None

    def record(self, grid_id: str, session_dir: Path | None, uid: int, outcome: Outcome) -> None:
        """Complete the .diag, pass the job script's own messages on, then tell A-REX.

        Without a session directory (none that the job's owner owns), only A-REX is told.
        """
        if session_dir is not None and uid > 0:
            try:
                self._complete_session_files(grid_id, session_dir, uid, outcome)
            except OSError as e:
                # A full session file system must not keep A-REX from learning that the job
                # ended (ARC's own backends carry on alike); only the site's lines are missing.
                log.warning("job %s: %s.diag not completed: %s; telling A-REX the job ended anyway",
                            grid_id, session_dir, e.strerror or e)
        done = self.job_file(grid_id, "lrms_done")
        tmp = done.with_name(done.name + ".arkd")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(outcome.lrms_done() + "\n")
        os.replace(tmp, done)
        self.wake(grid_id)

    def _complete_session_files(self, grid_id: str, session_dir: Path, uid: int, outcome: Outcome) -> None:
        lines = [f"nodename={outcome.node}"] if outcome.node else []
        if outcome.start:
            lines.append(f"LRMSStartTime={_mds_time(outcome.start)}")
        if outcome.end:
            lines.append(f"LRMSEndTime={_mds_time(outcome.end)}")
        if outcome.start and outcome.end:
            lines.append(f"WallTime={int((outcome.end - outcome.start).total_seconds())}s")
        if outcome.processors is not None:
            lines.append(f"Processors={outcome.processors}")
        if (usage := outcome.usage) is not None:
            if usage.user_seconds is not None and usage.kernel_seconds is not None:
                lines += [f"UserTime={usage.user_seconds:.2f}s", f"KernelTime={usage.kernel_seconds:.2f}s"]
            if usage.max_memory_kb is not None:
                lines.append(f"MaxResidentMemory={usage.max_memory_kb}kB")
        replaced = SITE_KEYS | {line.split("=", 1)[0].lower() for line in lines}
        lines.append(f"exitcode={outcome.exit_code}")
        lines.append(f"LRMSExitcode={outcome.exit_code}")
        if outcome.message:
            lines.append(f"LRMSMessage={outcome.message}")
        site = "".join(f"{line}\n" for line in lines)

        def measured_by_the_site(diag: str) -> str:
            # As ARC's batch backends do: what the site measured replaces what the job wrote, and
            # comes last. A-REX's accounting takes the last value of a key (any case) and joins
            # every nodename line, so the job can neither under-report nor add a node.
            kept = [line for line in diag.splitlines() if line.split("=", 1)[0].lower() not in replaced]
            return "".join(f"{line}\n" for line in kept) + site

        _rewrite_user_file(Path(f"{session_dir}.diag"), uid, measured_by_the_site)

        comment = _read_user_file(Path(f"{session_dir}.comment"), uid)
        if comment:
            fd = os.open(self.job_file(grid_id, "errors"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "a") as errors:
                errors.write("------- Contents of output stream forwarded by the LRMS ---------\n")
                errors.write(comment)
                errors.write("------------------------- End of output -------------------------\n")

    def wake(self, grid_id: str) -> None:
        """Kick A-REX through gm.fifo, as gm-kick does; harmless when A-REX is not listening."""
        try:
            fd = os.open(self.root / "gm.fifo", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                return
            raise
        try:
            os.write(fd, grid_id.encode() + b"\0")
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def read_small(path: Path, limit: int = 4096) -> str | None:
    """The start of a control file its job's owner may write (status, .local): a regular file, not
    followed through a symlink, at most `limit` bytes of it; None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit).decode("utf-8", "replace")


def find_session(roots: Iterable[PurePosixPath], grid_id: str, uid: int | None) -> Path | None:
    """The job's session directory: `<root>/<job id>`, a real directory owned by the job's user."""
    if uid is None:
        return None
    for root in roots:
        path = Path(root) / grid_id
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            return path
    return None


def prepare_session_files(session_dir: Path, uid: int, gid: int) -> None:
    """Check the session directory belongs to the caller; create its .diag/.comment siblings.

    They are mounted into the pod as single files, which must exist beforehand and belong to the
    job's user, who writes them from inside the container.
    """
    st = os.lstat(session_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise PermissionError(f"session directory {session_dir} is not a directory owned by uid {uid}")
    for suffix in (".diag", ".comment"):
        path = f"{session_dir}{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_APPEND, 0o600)
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or fst.st_nlink != 1:
                raise PermissionError(f"{path} is not a plain file")
            if fst.st_uid != uid:
                if fst.st_uid != 0:
                    raise PermissionError(f"{path} belongs to uid {fst.st_uid}, not {uid}")
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)


def _read_user_file(path: Path, uid: int) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not _users_own_file(os.fstat(f.fileno()), uid):
            return ""
        return f.read(1 << 20).decode("utf-8", "replace")


def _rewrite_user_file(path: Path, uid: int, rewrite: Callable[[str], str], limit: int = 1 << 20) -> None:
    """The file's text replaced by rewrite(text), in place (it stays hers): only a file of hers
    alone (see _users_own_file) of at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    with os.fdopen(fd, "r+b") as f:
        st = os.fstat(f.fileno())
        if not _users_own_file(st, uid) or st.st_size > limit:
            return
        text = rewrite(f.read(limit).decode("utf-8", "replace"))
        f.seek(0)
        f.write(text.encode())
        f.truncate()


def _users_own_file(st: os.stat_result, uid: int) -> bool:
    # One link: a hard link to someone else's file (or root's) is not hers to have read or written.
    return stat.S_ISREG(st.st_mode) and st.st_uid == uid != 0 and st.st_nlink == 1


def _mds_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ")
