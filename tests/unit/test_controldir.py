"""Results reach A-REX the way its own backends deliver them, in both control-dir layouts."""

import os
import stat
import subprocess
from datetime import datetime, timezone

import pytest

from arc_bridge.controldir import ControlDir, find_session, prepare_session_files
from arc_bridge.outcome import Outcome, Usage

GRID_ID = "abcdefghijklmnop"
# The job's user is never root; run as root (as CI does), the tests hand files to a stand-in uid.
UID = os.getuid() or 4242
OTHER_UID = UID + 1


def own(path, uid=UID):
    if os.getuid() == 0:
        os.chown(path, uid, uid, follow_symlinks=False)
    return path


def needs_root(reason):
    return pytest.mark.skipif(os.getuid() != 0, reason=f"needs root to {reason}")


@pytest.fixture(params=["arc6", "arc7"])
def controldir(request, tmp_path):
    root = tmp_path / "control"
    (root / "processing").mkdir(parents=True)
    cd = ControlDir(root)
    if request.param == "arc7":
        (root / "jobs").mkdir()
        cd.job_file(GRID_ID, "x").parent.mkdir(parents=True)
    cd.status_file(GRID_ID).write_text("INLRMS")
    return cd


def test_layouts_place_files_where_arc_reads_them(controldir):
    if controldir.arc7:
        assert controldir.job_file(GRID_ID, "lrms_done") == controldir.root / "jobs/abc/def/ghi/jklmnop/lrms_done"
        assert controldir.status_file(GRID_ID) == controldir.root / "processing" / f"{GRID_ID}.status"
    else:
        assert controldir.job_file(GRID_ID, "lrms_done") == controldir.root / f"job.{GRID_ID}.lrms_done"


def test_a_flat_file_name_is_a_job_and_suffix_only_as_the_layout_names_them(controldir):
    status = controldir.status_file(GRID_ID).name
    assert controldir.parse_name(status) == (GRID_ID, "status")
    assert controldir.parse_name("gm.fifo") is None
    assert controldir.parse_name(status.replace(GRID_ID, "")) is None
    assert controldir.parse_name(status + ".tmp") is None
    done = controldir.parse_name("abc.lrms_done" if controldir.arc7 else "job.abc.lrms_done")
    assert done == (None if controldir.arc7 else ("abc", "lrms_done"))  # ARC 7: in the job's own directory
    assert controldir.parse_name("job.abc.status" if controldir.arc7 else "abc.status") is None


def test_jobs_in_lrms_lists_only_unfinished_inlrms_jobs(controldir):
    other = "zzzzzzzzzzzzzz"
    if controldir.arc7:
        controldir.job_file(other, "x").parent.mkdir(parents=True)
    controldir.status_file(other).write_text("FINISHING")
    assert controldir.jobs_in_lrms() == [GRID_ID]
    controldir.status_file(GRID_ID).write_text("PENDING:CANCELING")
    assert controldir.jobs_in_lrms() == [GRID_ID]
    controldir.job_file(GRID_ID, "lrms_done").write_text("0\n")
    assert controldir.jobs_in_lrms() == []


def test_record_completes_diag_forwards_comment_and_wakes_arex(controldir, tmp_path):
    session = tmp_path / "sessions" / GRID_ID
    session.mkdir(parents=True)
    prepare_session_files(own(session), UID, UID)
    (tmp_path / "sessions" / f"{GRID_ID}.diag").write_text("nodename=the-pod\nProcessors=2\nexitcode=3\nwalltime=5\n")
    (tmp_path / "sessions" / f"{GRID_ID}.comment").write_text("RTE stage 1 said hello\n")
    fifo = controldir.root / "gm.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    t0, t1 = datetime(2026, 1, 1, 10, tzinfo=timezone.utc), datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    controldir.record(GRID_ID, session, UID, Outcome(3, "job exited with code 3", "node-1", t0, t1))

    assert controldir.job_file(GRID_ID, "lrms_done").read_text() == "3 job exited with code 3\n"
    diag = (tmp_path / "sessions" / f"{GRID_ID}.diag").read_text().splitlines()
    assert "nodename=node-1" in diag and "LRMSStartTime=20260101100000Z" in diag
    assert "LRMSEndTime=20260101110000Z" in diag and "LRMSExitcode=3" in diag
    # What the site measured replaces what the job wrote, and comes last, as ARC's batch backends
    # do: A-REX takes a key's last value and joins every nodename line.
    assert diag == ["Processors=2", "nodename=node-1", "LRMSStartTime=20260101100000Z", "LRMSEndTime=20260101110000Z",
                    "WallTime=3600s", "exitcode=3", "LRMSExitcode=3", "LRMSMessage=job exited with code 3"]
    assert "RTE stage 1 said hello" in controldir.job_file(GRID_ID, "errors").read_text()
    assert os.read(reader, 100) == GRID_ID.encode() + b"\0"
    os.close(reader)


def test_the_usage_the_site_measured_replaces_what_the_job_wrote(controldir, tmp_path):
    """CPU time, peak memory and processors as the pod reported them for the job's cgroup, in the
    keys and units ARC's job script writes with GNU time; the job's own lines for them go."""
    session = tmp_path / "sessions" / GRID_ID
    session.mkdir(parents=True)
    prepare_session_files(own(session), UID, UID)
    diag = tmp_path / "sessions" / f"{GRID_ID}.diag"
    diag.write_text("UserTime=0.01s\nKernelTime=0.00s\nMaxResidentMemory=10kB\nprocessors=64\nruntimeenvironments=\n")
    usage = Usage(user_seconds=12.345, kernel_seconds=0.5, max_memory_kb=102400)
    controldir.record(GRID_ID, session, UID, Outcome(0, "", "node-1", usage=usage, processors=2))
    assert diag.read_text().splitlines() == [
        "runtimeenvironments=", "nodename=node-1", "Processors=2", "UserTime=12.35s", "KernelTime=0.50s",
        "MaxResidentMemory=102400kB", "exitcode=0", "LRMSExitcode=0"]


def test_a_message_with_newlines_reaches_arex_as_one_line(controldir):
    controldir.record(GRID_ID, None, -1, Outcome(-1, "image could not be pulled:\nfake\n1 forged=line"))
    assert controldir.job_file(GRID_ID, "lrms_done").read_text() == "-1 image could not be pulled: fake 1 forged=line\n"


@needs_root("own files as two users")
def test_record_neither_reads_nor_writes_files_that_are_not_the_job_users_alone(controldir, tmp_path):
    session = tmp_path / GRID_ID
    session.mkdir()
    own(session)
    secret = tmp_path / "someone-elses-output"
    secret.write_text("private\n")
    own(secret, OTHER_UID)
    os.link(secret, tmp_path / f"{GRID_ID}.comment")  # hers by name, another user's by content
    diag = tmp_path / f"{GRID_ID}.diag"
    diag.write_text("")  # root's, as A-REX may leave it
    linked_diag = tmp_path / "a-link-to-her-diag"

    controldir.record(GRID_ID, session, UID, Outcome(0, ""))
    assert diag.read_text() == ""
    assert not controldir.job_file(GRID_ID, "errors").exists()

    own(diag)
    os.link(diag, linked_diag)  # two names for one file: could be anyone's other name for it
    controldir.record(GRID_ID, session, UID, Outcome(0, ""))
    assert diag.read_text() == ""
    assert controldir.job_file(GRID_ID, "lrms_done").read_text() == "0\n"


@needs_root("mount a file system")
def test_a_full_session_file_system_does_not_keep_arex_from_learning_the_end(controldir, tmp_path):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "ark-test", str(sessions)], check=True)
    try:
        session = sessions / GRID_ID
        session.mkdir()
        own(session)
        prepare_session_files(session, UID, UID)
        fd = os.open(sessions / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError, match="No space"):
            while True:
                os.write(fd, b"x" * 4096)
        os.close(fd)

        controldir.record(GRID_ID, session, UID, Outcome(0, "", "node-1"))
        assert controldir.job_file(GRID_ID, "lrms_done").read_text() == "0\n"
    finally:
        subprocess.run(["umount", str(sessions)], check=True)


def test_without_a_session_directory_only_arex_is_told(controldir):
    controldir.record(GRID_ID, None, UID, Outcome(-1, "lost"))
    assert controldir.job_file(GRID_ID, "lrms_done").read_text() == "-1 lost\n"


@needs_root("own files as another user")
def test_the_owner_of_a_job_is_the_owner_of_its_control_files_not_what_they_say(controldir):
    local = controldir.job_file(GRID_ID, "local")
    local.write_text("localid=x\nsessiondir=/elsewhere\n")
    assert controldir.owner(GRID_ID) is None  # root's: no user to act for
    own(local)
    assert controldir.owner(GRID_ID) == UID
    assert controldir.owner("nosuchjob") is None


@needs_root("own files as two users")
def test_a_session_is_the_job_users_own_directory_under_a_configured_root(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
    assert find_session(roots, GRID_ID, UID) is None
    (roots[0] / GRID_ID).mkdir()
    own(roots[0] / GRID_ID, OTHER_UID)
    os.symlink(tmp_path, roots[1] / GRID_ID)
    assert find_session(roots, GRID_ID, UID) is None  # another user's directory, and a symlink
    (roots[1] / GRID_ID).unlink()
    (roots[1] / GRID_ID).mkdir()
    own(roots[1] / GRID_ID)
    assert find_session(roots, GRID_ID, UID) == roots[1] / GRID_ID
    assert find_session(roots, GRID_ID, None) is None


def test_waking_without_a_listening_arex_is_harmless(controldir):
    os.mkfifo(controldir.root / "gm.fifo")
    controldir.wake(GRID_ID)


def test_session_siblings_are_never_followed_through_symlinks(tmp_path):
    session = tmp_path / GRID_ID
    session.mkdir()
    target = tmp_path / "precious"
    target.write_text("keep")
    os.symlink(target, tmp_path / f"{GRID_ID}.diag")
    with pytest.raises(OSError):
        prepare_session_files(own(session), UID, UID)
    assert target.read_text() == "keep"


def test_a_session_directory_of_another_user_is_refused(tmp_path):
    session = tmp_path / GRID_ID
    session.mkdir()
    with pytest.raises(PermissionError, match="not a directory owned by uid"):
        prepare_session_files(session, OTHER_UID, OTHER_UID)
    link = tmp_path / "link"
    os.symlink(session, link)
    with pytest.raises(PermissionError):
        prepare_session_files(link, UID, UID)


def test_diag_and_comment_are_created_for_the_job_user(tmp_path):
    session = tmp_path / GRID_ID
    session.mkdir()
    prepare_session_files(own(session), UID, UID)
    st = os.stat(tmp_path / f"{GRID_ID}.diag")
    assert stat.S_ISREG(st.st_mode) and st.st_uid == UID and stat.S_IMODE(st.st_mode) == 0o600


def test_a_status_file_its_owner_grew_or_replaced_is_read_only_in_part_and_never_blocks(controldir):
    status = controldir.status_file(GRID_ID)
    status.write_text("INLRMS" + " " * (64 << 20))
    assert controldir.state(GRID_ID) == "INLRMS"
    status.unlink()
    os.mkfifo(status)  # nobody writes: a read would hang
    assert controldir.state(GRID_ID) is None
