"""How a Job ended, in A-REX's terms: exit code and a message a grid user understands."""

from datetime import datetime, timedelta, timezone

from arc_bridge.outcome import (LOST_CODE, SIGKILL_CODE, SIGTERM_CODE, Usage, deleted_outcome, interrupted_outcome,
                                job_outcome, parse_usage, walltime_due)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
T0, T1 = "2026-11-25T11:00:00Z", "2026-11-25T11:05:00Z"


def job(condition=None, reason=None, annotations=None):
    status = {}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "reason": reason, "lastTransitionTime": T1}]
    return {"metadata": {"name": "j", "annotations": {"ark.nordugrid.org/walltime": "60",
                                                      "ark.nordugrid.org/memory-mb": "100", **(annotations or {})}},
            "status": status}


def pod(state, phase="Running", reason=None, created=T0):
    status = {"phase": phase, "containerStatuses": [{"state": state}]}
    if reason:
        status["reason"] = reason
        status["message"] = "The node was low on resource: memory."
    return {"metadata": {"creationTimestamp": created}, "spec": {"nodeName": "node-1", "containers": [{"image": "r/vo/x:1"}]},
            "status": status}


def terminated(code, reason="Completed"):
    return {"terminated": {"exitCode": code, "reason": reason, "startedAt": T0, "finishedAt": T1}}


def test_a_running_or_queued_job_has_no_outcome_yet():
    assert job_outcome(job(), None, NOW, 60) is None
    assert job_outcome(job(), pod({"running": {"startedAt": T0}}), NOW, 60) is None
    assert job_outcome(job(), pod({"waiting": {"reason": "ContainerCreating"}}, "Pending"), NOW, 60) is None


def test_success_reports_code_zero_node_and_times():
    out = job_outcome(job("Complete"), pod(terminated(0), "Succeeded"), NOW, 60)
    assert out.lrms_done() == "0"
    assert out.node == "node-1"
    assert (out.end - out.start) == timedelta(minutes=5)


def test_a_pod_that_ended_by_itself_decides_before_the_job_controller_does():
    assert job_outcome(job(), pod(terminated(0), "Succeeded"), NOW, 60).lrms_done() == "0"
    assert job_outcome(job(), pod(terminated(5, "Error"), "Failed"), NOW, 60).lrms_done() == "5 job exited with code 5"
    stopped = pod(terminated(143, "Error"), "Failed")
    stopped["metadata"]["deletionTimestamp"] = T1
    assert job_outcome(job(), stopped, NOW, 60) is None  # the Job's condition will say why


def test_a_payload_exit_code_is_passed_on():
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), pod(terminated(3, "Error"), "Failed"), NOW, 60)
    assert out.lrms_done() == "3 job exited with code 3"


def test_walltime_overrun_names_the_limit():
    out = job_outcome(job("Failed", "DeadlineExceeded"), pod({"running": {"startedAt": T0}}), NOW, 60)
    assert out.exit_code == SIGTERM_CODE
    assert "wall time limit of 60 s" in out.message


def test_oom_kill_names_the_memory_limit():
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), pod(terminated(137, "OOMKilled"), "Failed"), NOW, 60)
    assert out.exit_code == SIGKILL_CODE
    assert "memory limit of 100 MB" in out.message


def test_oom_kill_without_a_memory_limit_blames_the_node():
    unlimited = job("Failed", "BackoffLimitExceeded", {"ark.nordugrid.org/memory-mb": ""})
    out = job_outcome(unlimited, pod(terminated(137, "OOMKilled"), "Failed"), NOW, 60)
    assert out.exit_code == SIGKILL_CODE
    assert out.message == ("job was killed by the out-of-memory killer of node node-1 (its queue sets no memory "
                           "limit: the node ran out)")


def test_a_job_over_its_scratch_is_stopped_naming_the_limit():
    over = pod({}, "Failed", "Evicted")
    over["status"]["message"] = 'Usage of EmptyDir volume "scratch" exceeds the limit "10Mi". '
    out = job_outcome(job(annotations={"ark.nordugrid.org/scratch-mb": "10"}), over, NOW, 60)
    assert out.exit_code == SIGKILL_CODE
    assert out.message.startswith("job was stopped for using more than its scratch space (disk) of 10 MB: Usage of")
    over["status"]["message"] = "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    assert job_outcome(job(), over, NOW, 60).exit_code == SIGKILL_CODE


def test_a_pod_its_node_refused_or_could_not_start_says_why():
    refused = pod({}, "Failed", "OutOfcpu")
    refused["status"]["message"] = "Pod Node didn't have enough resource: cpu, requested: 1000, used: 1500"
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), refused, NOW, 60)
    assert out.exit_code == LOST_CODE
    assert out.message == ("job's pod failed on node node-1 before it ran: OutOfcpu: Pod Node didn't have enough "
                           "resource: cpu, requested: 1000, used: 1500")
    cannot = pod({"terminated": {"exitCode": 128, "reason": "StartError", "message": "failed to create task",
                                 "startedAt": T0, "finishedAt": T1}}, "Failed")
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), cannot, NOW, 60)
    assert (out.exit_code, out.message) == (128, "job's container ended with code 128: StartError: failed to create task")


def test_a_failed_job_waits_a_while_for_its_pods_last_status():
    """The watches of Jobs and pods are not ordered: the Job may say Failed while the cached pod
    still runs. Its cause is on its way; without it after a while, the Job's reason is reported."""
    failed = job("Failed", "BackoffLimitExceeded")  # failed at T1
    live = pod({"running": {"startedAt": T0}})
    soon = datetime(2026, 11, 25, 11, 5, 10, tzinfo=timezone.utc)
    assert job_outcome(failed, live, soon, 60) is None
    later = job_outcome(failed, live, soon + timedelta(seconds=30), 60)
    assert later.exit_code == LOST_CODE and later.message == "Kubernetes failed the job: BackoffLimitExceeded"
    ended = pod(terminated(2, "Error"), "Failed")
    assert job_outcome(failed, ended, soon, 60).message == "job exited with code 2"


def test_a_complete_job_waits_a_while_for_the_usage_in_its_pods_last_status():
    """The site's measurement of the job comes with the pod's last status: recorded without it,
    the job's own claims in its .diag would stand."""
    complete = job("Complete")
    complete["status"]["completionTime"] = T1
    live = pod({"running": {"startedAt": T0}})
    soon = datetime(2026, 11, 25, 11, 5, 10, tzinfo=timezone.utc)
    assert job_outcome(complete, live, soon, 60) is None
    ended = pod(terminated(0), "Succeeded")
    ended["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "cpu.stat user_usec 2000000\ncpu.stat system_usec 0\n"
    out = job_outcome(complete, ended, soon, 60)
    assert (out.exit_code, out.usage.user_seconds) == (0, 2.0)
    late = job_outcome(complete, live, soon + timedelta(seconds=30), 60)
    assert (late.exit_code, late.usage) == (0, None)


def test_eviction_and_node_loss_are_infrastructure_failures():
    evicted = job_outcome(job(), pod({}, "Failed", "Evicted"), NOW, 60)
    assert evicted.exit_code == LOST_CODE and "evicted from node node-1" in evicted.message
    lost = job_outcome(job(), pod({"running": {"startedAt": T0}}, "Unknown", "NodeLost"), NOW, 60)
    assert lost.exit_code == LOST_CODE and "node node-1 was lost" in lost.message


def test_image_pull_failure_waits_for_the_grace_period():
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    fresh = pod(waiting, "Pending", created=(NOW - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert job_outcome(job(), fresh, NOW, 60) is None
    old = pod(waiting, "Pending", created=(NOW - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    out = job_outcome(job(), old, NOW, 60)
    assert out.exit_code == LOST_CODE and "image r/vo/x:1 could not be pulled" in out.message


def test_a_deleted_job_is_cancelled_only_if_arkd_marked_it():
    cancelled = deleted_outcome(job(annotations={"ark.nordugrid.org/cancelled": "true"}), None, NOW)
    assert cancelled.cancelled and cancelled.message == "job was cancelled"
    removed = deleted_outcome(job(), None, NOW)
    assert not removed.cancelled and removed.exit_code == LOST_CODE


def node_object(ready="True", since=T1, unschedulable=False):
    return {"metadata": {"name": "node-1"}, "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}]}}


def running_job(started=T1, deadline=3600, **kwargs):
    j = job(**kwargs)
    j["spec"] = {"activeDeadlineSeconds": deadline}
    j["status"]["startTime"] = started
    return j


def taken():
    p = pod({"running": {"startedAt": T0}})
    p["metadata"]["deletionTimestamp"] = T1
    return p


def test_a_job_on_a_node_that_stopped_answering_fails_naming_the_node():
    out = interrupted_outcome(running_job(), taken(), node_object("Unknown"), NOW)
    assert out.exit_code == LOST_CODE and out.node == "node-1" and out.end == NOW
    assert out.message == (f"node node-1 stopped answering while running the job (not ready since {T1}); "
                           "Kubernetes gave the job up")
    gone = interrupted_outcome(running_job(), taken(), None, NOW)
    assert gone.message.startswith("node node-1 stopped answering")


def test_a_drained_node_or_a_deleted_pod_stops_the_job_saying_so():
    drained = interrupted_outcome(running_job(), taken(), node_object(unschedulable=True), NOW)
    assert drained.exit_code == LOST_CODE
    assert drained.message == "node node-1 was drained while running the job, which was stopped"
    deleted = interrupted_outcome(running_job(), taken(), node_object(), NOW)
    assert deleted.message == "job's pod on node node-1 was deleted by someone other than arkd; the job was stopped"


def test_a_job_arkd_stopped_for_a_drain_is_recorded_when_its_pods_are_gone_with_the_reason():
    why = "node node-1 was drained while running the job, which was stopped"
    stopped = job(annotations={"ark.nordugrid.org/stopped": why})
    out = deleted_outcome(stopped, pod(terminated(137, "Error"), "Failed"), NOW)
    assert (out.exit_code, out.message, out.node, out.cancelled) == (LOST_CODE, why, "node-1", False)
    assert interrupted_outcome(running_job(annotations={"ark.nordugrid.org/stopped": why}), taken(),
                               node_object(unschedulable=True), NOW) is None  # once is enough


def test_a_pod_deleted_for_the_jobs_own_end_is_left_to_the_job():
    lost = node_object("Unknown")
    assert interrupted_outcome(running_job(annotations={"ark.nordugrid.org/cancelled": "true"}), taken(), lost, NOW) is None
    overdue = running_job(started="2026-11-25T10:00:00Z", deadline=60)
    assert interrupted_outcome(overdue, taken(), lost, NOW) is None
    failed = running_job()
    failed["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
    assert interrupted_outcome(failed, taken(), lost, NOW) is None
    deleting = running_job()
    deleting["metadata"]["deletionTimestamp"] = T1
    assert interrupted_outcome(deleting, taken(), lost, NOW) is None


def test_the_pods_report_of_its_cgroup_becomes_the_jobs_usage():
    v1 = "cpuacct/cpuacct.stat user 250\ncpuacct/cpuacct.stat system 50\nmemory/memory.max_usage_in_bytes 2097152\n"
    assert parse_usage(v1) == Usage(2.5, 0.5, 2048)
    v2 = "cpu.stat usage_usec 3000000\ncpu.stat user_usec 2000000\ncpu.stat system_usec 1000000\nmemory.peak 1048576\n"
    assert parse_usage(v2) == Usage(2.0, 1.0, 1024)
    assert parse_usage("") is None
    assert parse_usage("exec: bash: not found") is None


def test_an_ended_pod_gives_its_usage_and_processors():
    ended = pod(terminated(0), "Succeeded")
    ended["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "memory.peak 1048576\n"
    ended["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1500m"}}
    out = job_outcome(job("Complete"), ended, NOW, 60)
    assert out.exit_code == 0 and out.usage == Usage(max_memory_kb=1024) and out.processors == 2


def test_an_image_without_a_shell_is_named():
    start_error = {"terminated": {"exitCode": 128, "reason": "StartError", "startedAt": T0, "finishedAt": T0,
                                  "message": 'failed to create containerd task: OCI runtime create failed: '
                                             'container_linux.go:370: starting container process caused: exec: '
                                             '"/bin/sh": stat /bin/sh: no such file or directory: unknown'}}
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), pod(start_error, "Failed"), NOW, 60)
    assert out.exit_code == 128
    assert out.message.startswith("image r/vo/x:1 has no /bin/sh, which runs ARC's job script: the VO's image needs "
                                  "a POSIX shell (StartError: failed to create containerd task")


def test_a_job_past_its_wall_time_that_kubernetes_left_running_is_stopped_by_arkd():
    """1.20's Job controller at times misses a deadline; arkd reports it WALLTIME_GRACE_SECONDS later."""
    running = job(annotations={"ark.nordugrid.org/walltime": "60"})
    running["spec"] = {"activeDeadlineSeconds": 60}
    running["status"]["startTime"] = (NOW - timedelta(seconds=65)).strftime("%Y-%m-%dT%H:%M:%SZ")
    live = pod({"running": {"startedAt": T0}})
    assert job_outcome(running, live, NOW, 60) is None
    later = NOW + timedelta(seconds=6)
    out = job_outcome(running, live, later, 60)
    assert out.exit_code == SIGTERM_CODE and out.message == "job exceeded its wall time limit of 60 s and was stopped"
    assert walltime_due(running) == NOW + timedelta(seconds=5)
    ended = pod(terminated(0), "Succeeded")  # it ended by itself in time, and was seen late
    assert job_outcome(running, ended, later, 60).exit_code == 0


def test_a_pod_stopped_from_outside_reports_no_usage_the_job_could_have_written():
    """The termination-log file is world-writable: only a launcher that reached its end wrote it."""
    stopped = pod(terminated(137, "Error"), "Failed")
    stopped["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "memory.peak 1024\n"
    stopped["metadata"]["deletionTimestamp"] = T1
    why = "node node-1 was drained while running the job, which was stopped"
    assert deleted_outcome(job(annotations={"ark.nordugrid.org/stopped": why}), stopped, NOW).usage is None


def test_a_job_gone_after_its_deadline_is_reported_as_over_its_wall_time():
    gone = job("Failed", "DeadlineExceeded")
    out = deleted_outcome(gone, None, NOW)
    assert out.exit_code == SIGTERM_CODE and out.message == "job exceeded its wall time limit of 60 s and was stopped"


def test_a_second_pod_that_refused_to_run_the_job_says_the_first_was_taken_away():
    refused = pod(terminated(1, "Error"), "Failed")
    refused["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "ark-refused: a second pod of the Job\n"
    out = job_outcome(job("Failed", "BackoffLimitExceeded"), refused, NOW, 60)
    assert out.exit_code == LOST_CODE and out.message.startswith("job's first pod was taken away from its node")
