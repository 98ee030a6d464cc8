"""How arkd records a job's end (once, whatever order and number of events bring it) and rides out
an API server that is away."""

import os
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes.client.exceptions import ApiException

from arc_bridge import kube
from arc_bridge.config import parse_config
from arc_bridge.errors import KubernetesFailed
from arc_bridge.informer import key_of
from arc_bridge.service import Bridge
from arc_bridge.outcome import WALLTIME_GRACE_SECONDS
from arc_bridge.translate import ANN_SESSION, ANN_WALLTIME, LABEL_JOB_ID, LABEL_UID, LABEL_VO

GRID_ID = "abcdefghijklmnop"
UID = os.getuid() or 4242


class NoApi:
    """arkd's Kubernetes side for a test that only delivers events: deletes are noted, nothing else."""

    def __init__(self):
        self.deleted = []

    def delete_job(self, namespace, name):
        self.deleted.append(name)


@pytest.fixture
def bridge(raw_config, tmp_path):
    raw_config.update(controldir=str(tmp_path / "control"), session_roots=[str(tmp_path / "sessions")])
    (tmp_path / "control" / "processing").mkdir(parents=True)
    (tmp_path / "control" / "processing" / f"job.{GRID_ID}.status").write_text("INLRMS")
    session = tmp_path / "sessions" / GRID_ID
    session.mkdir(parents=True)
    for path in (session, tmp_path / "sessions" / f"{GRID_ID}.diag"):
        path.touch()
        if os.getuid() == 0:
            os.chown(path, UID, UID)
    return Bridge(parse_config(raw_config), NoApi())


def deliver(bridge, kind: str, job: dict) -> None:
    """A watch event for the Job, as the informer hands it on (its cache first), then handled."""
    with bridge.jobs.lock:
        if kind == "DELETED":
            bridge.jobs._drop(key_of(job))
        else:
            bridge.jobs._put(job)
    bridge._on_job(kind, job)
    bridge.work()


def completed_job(session: str) -> dict:
    return {"metadata": {"name": "ark-job", "namespace": "ark-alpha",
                         "labels": {LABEL_JOB_ID: GRID_ID, LABEL_UID: str(UID), LABEL_VO: "alpha"},
                         "annotations": {ANN_SESSION: session}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}],
                       "completionTime": "2026-11-30T10:00:00Z"}}


def test_a_job_is_recorded_once_even_after_arex_took_its_lrms_done(bridge, tmp_path):
    job = completed_job(str(tmp_path / "sessions" / GRID_ID))
    done = bridge.controldir.job_file(GRID_ID, "lrms_done")
    deliver(bridge, "MODIFIED", job)
    assert done.read_text() == "0\n"
    diag = (tmp_path / "sessions" / f"{GRID_ID}.diag").read_text()
    done.unlink()  # A-REX read it and moved the job on; the Job's events keep coming meanwhile
    deliver(bridge, "MODIFIED", job)
    deliver(bridge, "DELETED", job)
    assert not done.exists()
    assert (tmp_path / "sessions" / f"{GRID_ID}.diag").read_text() == diag
    assert bridge.kube.deleted == ["ark-job", "ark-job"]
    assert bridge.recorded == set()  # forgotten with the Job's last event


def test_a_job_deleted_after_arex_moved_on_is_not_recorded_again(bridge, tmp_path):
    """A Job that outlived its lost node goes when the node returns, maybe after an arkd restart."""
    job = completed_job(str(tmp_path / "sessions" / GRID_ID))
    job["status"] = {"active": 1}
    bridge.controldir.status_file(GRID_ID).write_text("FINISHED")
    deliver(bridge, "DELETED", job)
    assert not bridge.controldir.job_file(GRID_ID, "lrms_done").exists()


def test_a_deleted_job_whose_record_failed_is_tried_again_by_the_tick(bridge, tmp_path, monkeypatch):
    job = completed_job(str(tmp_path / "sessions" / GRID_ID))
    job["status"] = {"active": 1}
    failing = {"left": 1}
    record = bridge.controldir.record

    def flaky(*args):
        if failing["left"]:
            failing["left"] -= 1
            raise OSError("control directory unwritable for a moment")
        record(*args)

    monkeypatch.setattr(bridge.controldir, "record", flaky)
    deliver(bridge, "DELETED", job)
    done = bridge.controldir.job_file(GRID_ID, "lrms_done")
    assert not done.exists()
    bridge.tick()
    bridge.work()
    assert done.read_text() == "-1 job was deleted from Kubernetes by someone other than arkd\n"


def test_a_job_kubernetes_leaves_running_past_its_wall_time_is_stopped_by_the_tick(bridge, tmp_path):
    """1.20's Job controller at times misses a deadline, and no event comes when one passes: the
    tick stops the job WALLTIME_GRACE_SECONDS after it."""
    clock = [datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)]
    bridge.now = lambda: clock[0]
    job = completed_job(str(tmp_path / "sessions" / GRID_ID))
    job["metadata"]["annotations"][ANN_WALLTIME] = "60"
    job["spec"] = {"activeDeadlineSeconds": 60}
    job["status"] = {"startTime": "2026-11-30T12:00:00Z", "active": 1}
    deliver(bridge, "MODIFIED", job)
    done = bridge.controldir.job_file(GRID_ID, "lrms_done")
    clock[0] += timedelta(seconds=60 + WALLTIME_GRACE_SECONDS - 1)
    bridge.tick()
    bridge.work()
    assert not done.exists()
    clock[0] += timedelta(seconds=1)
    bridge.tick()
    bridge.work()
    assert done.read_text() == "271 job exceeded its wall time limit of 60 s and was stopped\n"
    assert bridge.kube.deleted == ["ark-job"]


def test_an_api_server_that_is_away_for_a_while_is_waited_for(monkeypatch):
    monkeypatch.setattr(kube.time, "sleep", lambda s: None)
    answers = iter([ConnectionRefusedError(), ApiException(status=503, reason="etcd"), "created"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert kube.retrying(call, "creating a Job") == "created"
    with pytest.raises(ApiException):  # a refusal on the merits is not retried
        kube.retrying(lambda: (_ for _ in ()).throw(ApiException(status=422, reason="Invalid")), "creating a Job")


def test_a_forbidden_is_waited_out_only_while_the_api_server_is_not_ready(monkeypatch):
    """A restarted API server refuses everyone until it has loaded its RBAC roles."""
    monkeypatch.setattr(kube.time, "sleep", lambda s: None)
    readiness = iter([False, False, True])
    calls = []

    def forbidden():
        calls.append(1)
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(KubernetesFailed, match="creating a Job: Kubernetes refused arkd .HTTP 403"):
        kube.retrying(forbidden, "creating a Job", ready=lambda: next(readiness))
    assert len(calls) == 3  # twice while starting, then final once the server is ready
    calls.clear()
    with pytest.raises(KubernetesFailed):
        kube.retrying(forbidden, "creating a Job")  # by default a 403 is final at once
    assert len(calls) == 1


def test_an_api_server_away_for_too_long_is_reported_in_one_line(monkeypatch):
    monkeypatch.setattr(kube.time, "sleep", lambda s: None)
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(kube.time, "monotonic", lambda: next(clock))
    with pytest.raises(KubernetesFailed, match=r"^reading Job x/y: the Kubernetes API server did not answer "
                                               r"within 180 s \(ConnectionRefusedError\)$"):
        kube.retrying(lambda: (_ for _ in ()).throw(ConnectionRefusedError()), "reading Job x/y")


def test_a_complete_job_is_recorded_with_the_usage_its_pods_last_status_brings(bridge, tmp_path):
    """The watches of Jobs and pods are not ordered: the Job may say Complete while the cached pod
    still runs. The job is recorded when the pod's last status comes, with the site's measurement
    replacing what the job wrote into its .diag."""
    bridge.now = lambda: datetime(2026, 11, 30, 10, 0, 5, tzinfo=timezone.utc)
    diag = tmp_path / "sessions" / f"{GRID_ID}.diag"
    diag.write_text("UserTime=0.01s\n")
    pod = {"metadata": {"name": "ark-job-x", "namespace": "ark-alpha", "labels": {LABEL_JOB_ID: GRID_ID},
                        "creationTimestamp": "2026-11-30T09:59:00Z"},
           "spec": {"nodeName": "wn1", "containers": [{"resources": {"limits": {"cpu": "2"}}}]},
           "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}
    with bridge.pods.lock:
        bridge.pods._put(pod)
    deliver(bridge, "MODIFIED", completed_job(str(tmp_path / "sessions" / GRID_ID)))
    done = bridge.controldir.job_file(GRID_ID, "lrms_done")
    assert not done.exists()
    pod["status"] = {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {
        "exitCode": 0, "message": "cpu.stat user_usec 2000000\ncpu.stat system_usec 500000\n"}}}]}
    with bridge.pods.lock:
        bridge.pods._put(pod)
    bridge._on_pod("MODIFIED", pod)
    bridge.work()
    assert done.read_text() == "0\n"
    assert "UserTime=2.00s" in diag.read_text().splitlines() and "UserTime=0.01s" not in diag.read_text()
