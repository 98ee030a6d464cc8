"""Decide how a Kubernetes Job ended, in A-REX's terms. Pure: objects in, Outcome out.

The objects are the API's JSON form (camelCase dicts), as the watch delivers them.
Codes follow ARC's backends: the payload's own exit code where it ran to the end, 256+signal
when the job was killed, -1 when the batch system lost or never started it.
"""

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .quantity import cpu_count
from .translate import ANN_CANCELLED, ANN_MEMORY, ANN_SCRATCH, ANN_STOPPED, ANN_WALLTIME, REFUSED

SIGKILL_CODE = 256 + 9
SIGTERM_CODE = 256 + 15
LOST_CODE = -1
POD_STATUS_WAIT_SECONDS = 30
WALLTIME_GRACE_SECONDS = 10
# The kubelet's words (eviction manager) for a pod over its ephemeral-storage limit or its
# emptyDir's sizeLimit: the job's scratch.
SCRATCH_EVICTION = re.compile(r"ephemeral (local )?storage|EmptyDir volume")
# The runtime's words for a container whose command, ARC's job script's shell, is not in the image.
NO_SHELL = re.compile(r'"?/bin/sh"?: (stat /bin/sh: )?(no such file or directory|not found)', re.I)
PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


# cgroup v1 reports CPU time in USER_HZ ticks, which Linux fixes at 100 a second.
USER_HZ = 100


@dataclass(frozen=True)
class Usage:
    """What the job's cgroup used, as the pod's first process read it when the job had ended."""

    user_seconds: float | None = None
    kernel_seconds: float | None = None
    max_memory_kb: int | None = None


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    message: str
    node: str = ""
    start: datetime | None = None
    end: datetime | None = None
    cancelled: bool = False
    usage: Usage | None = None
    processors: int | None = None

    def __post_init__(self) -> None:
        # Messages quote Kubernetes and containerd, and an image's name or a pod's message may
        # carry newlines; .lrms_done and .diag are line-based, so a message is always one line.
        object.__setattr__(self, "message", " ".join(self.message.split()))

    def lrms_done(self) -> str:
        """The content of job.ID.lrms_done: "<code> <message>"."""
        return f"{self.exit_code} {self.message}".rstrip()


def parse_usage(message: str) -> Usage | None:
    """The launcher's report (translate._LAUNCHER): lines "FILE KEY VALUE" of the cgroup's files,
    or "FILE VALUE" for a file of one value. None if it holds none of them."""
    values: dict[str, int] = {}
    for line in message.splitlines():
        words = line.split()
        if len(words) in (2, 3) and words[-1].isdigit():
            values[" ".join(words[:-1])] = int(words[-1])
    v1 = ("cpuacct/cpuacct.stat user", "cpuacct/cpuacct.stat system", USER_HZ)
    v2 = ("cpu.stat user_usec", "cpu.stat system_usec", 1_000_000)
    user = kernel = None
    for user_key, kernel_key, per_second in (v1, v2):
        if user_key in values and kernel_key in values:
            user, kernel = values[user_key] / per_second, values[kernel_key] / per_second
    peak = values.get("memory/memory.max_usage_in_bytes", values.get("memory.peak"))
    usage = Usage(user, kernel, peak // 1024 if peak is not None else None)
    return usage if usage != Usage() else None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def job_outcome(job: dict[str, Any], pod: dict[str, Any] | None, now: datetime, pull_grace: int) -> Outcome | None:
    """The outcome of a Job that still exists, or None while it is queued or running."""
    return _measured(_job_outcome(job, pod, now, pull_grace), pod)


def walltime_due(job: dict[str, Any]) -> datetime | None:
    """When arkd stops a job that is still running past its wall time: the Job's deadline and
    WALLTIME_GRACE_SECONDS for the controller to act."""
    deadline = _deadline(job)
    return None if deadline is None else deadline + timedelta(seconds=WALLTIME_GRACE_SECONDS)


def _deadline(job: dict[str, Any]) -> datetime | None:
    """The Job's deadline, from its start, as the Job controller counts."""
    begun = parse_time((job.get("status") or {}).get("startTime"))
    seconds = (job.get("spec") or {}).get("activeDeadlineSeconds")
    return None if begun is None or seconds is None else begun + timedelta(seconds=seconds)


def _walltime_exceeded(meta: dict[str, Any], node: str, start: datetime | None, end: datetime | None) -> Outcome:
    limit = meta.get("annotations", {}).get(ANN_WALLTIME, "?")
    return Outcome(SIGTERM_CODE, f"job exceeded its wall time limit of {limit} s and was stopped", node, start, end)


def job_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Job's conditions that hold (Complete, Failed), by type."""
    return {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def _measured(outcome: Outcome | None, pod: dict[str, Any] | None) -> Outcome | None:
    """The outcome with what the pod reports of the job's use of the node. The usage only from a
    pod that ended by itself: one stopped from outside lost its first process before it wrote,
    and the termination message is then whatever the job left in that (world-writable) file."""
    if outcome is None or pod is None:
        return outcome
    terminated = _container(pod).get("state", {}).get("terminated") or {}
    usage = None if pod["metadata"].get("deletionTimestamp") else parse_usage(terminated.get("message") or "")
    return replace(outcome, usage=usage, processors=_processors(pod))


def _job_outcome(job: dict[str, Any], pod: dict[str, Any] | None, now: datetime, pull_grace: int) -> Outcome | None:
    meta, status = job.get("metadata", {}), job.get("status") or {}
    conditions = job_conditions(job)
    node = ((pod or {}).get("spec") or {}).get("nodeName") or ""
    start, end = _times(pod)
    end = end or parse_time(status.get("completionTime"))

    if "Complete" in conditions:
        # The pod's last status carries the site's measurement of the job (translate._LAUNCHER):
        # without it the job's own claims in its .diag would stand.
        if _pod_status_on_its_way(pod, now, end):
            return None
        return Outcome(0, "", node, start, end)
    if "Failed" in conditions:
        failed = conditions["Failed"]
        end = end or parse_time(failed.get("lastTransitionTime")) or now
        if failed.get("reason") == "DeadlineExceeded":
            return _walltime_exceeded(meta, node, start, end)
        said = _pod_outcome(meta, pod, node, start, end)
        if said is not None:
            return said
        if _pod_status_on_its_way(pod, now, end):
            return None  # rather than report no cause
        return Outcome(LOST_CODE, f"Kubernetes failed the job: {failed.get('message') or failed.get('reason')}",
                       node, start, end)
    if pod is not None:
        pod_status = pod.get("status") or {}
        if pod_status.get("reason") in ("Evicted", "NodeLost") or pod_status.get("phase") == "Unknown":
            return _pod_outcome(meta, pod, node, start, now)
        # With backoffLimit 0 a pod that ended by itself is the job's end: no need to wait for the
        # Job controller. A pod being deleted was stopped (deadline, cancel): the Job says why.
        if pod_status.get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return _pod_outcome(meta, pod, node, start, end or now)
    if (due := walltime_due(job)) is not None and now >= due:
        # The Job controller of 1.20 at times misses a deadline (it wakes for a Job only on an
        # event, or at a requeue it may lose): arkd stops the job itself a little later.
        return _walltime_exceeded(meta, node, start, now)
    if pod is not None:
        waiting = _container(pod).get("state", {}).get("waiting") or {}
        created = parse_time(pod.get("metadata", {}).get("creationTimestamp")) or now
        if waiting.get("reason") in PULL_FAILURES and (now - created).total_seconds() >= pull_grace:
            detail = waiting.get("message") or waiting.get("reason")
            return Outcome(LOST_CODE, f"image {_image(pod)} could not be pulled: {detail}", node, None, now)
    return None


def _pod_status_on_its_way(pod: dict[str, Any] | None, now: datetime, end: datetime | None) -> bool:
    """The Job controller ends a Job on its pod's account, so the pod's last status exists; while
    the cache still shows the pod live, that status is on its way (the watches of Jobs and pods
    are not ordered), for a while."""
    return (pod is not None and (pod.get("status") or {}).get("phase") in ("Pending", "Running")
            and (now - (end or now)).total_seconds() < POD_STATUS_WAIT_SECONDS)


def deleted_outcome(job: dict[str, Any], pod: dict[str, Any] | None, now: datetime) -> Outcome:
    """The outcome of a Job that disappeared before arkd recorded it: cancelled, or removed by hand."""
    start, _ = _times(pod)
    node = ((pod or {}).get("spec") or {}).get("nodeName") or ""
    annotations = job.get("metadata", {}).get("annotations", {})
    if job_conditions(job).get("Failed", {}).get("reason") == "DeadlineExceeded":  # its last state said so
        return _walltime_exceeded(job.get("metadata", {}), node, start, now)
    if annotations.get(ANN_CANCELLED):
        return Outcome(SIGTERM_CODE, "job was cancelled", node, start, now, cancelled=True)
    if stopped := annotations.get(ANN_STOPPED):
        return _measured(Outcome(LOST_CODE, stopped, node, start, now), pod)
    return Outcome(LOST_CODE, "job was deleted from Kubernetes by someone other than arkd", node, start, now)


def interrupted_outcome(job: dict[str, Any], pod: dict[str, Any], node: dict[str, Any] | None,
                        now: datetime) -> Outcome | None:
    """The outcome of a job whose pod, bound to `node`, someone other than arkd is deleting: the
    taint manager giving up a node that stopped answering, `kubectl drain`, an admin. None where
    the deletion is the job's own end (cancel, wall time, done), which the Job reports itself.
    `job` must be fresh from the API server: a cancel marks the Job before its pod goes."""
    meta = job["metadata"]
    if job_conditions(job) or meta.get("deletionTimestamp") or {ANN_CANCELLED, ANN_STOPPED} & meta.get("annotations", {}).keys():
        return None
    # The Job controller deletes the pods of a Job past its deadline before it marks it Failed (by
    # its clock, which may run ahead of arkd's).
    if (deadline := _deadline(job)) is not None and now >= deadline - timedelta(seconds=WALLTIME_GRACE_SECONDS):
        return None
    name = (pod.get("spec") or {}).get("nodeName") or "?"
    if not node_ready(node):
        ready = _condition(node, "Ready")
        why = (f"node {name} stopped answering while running the job (not ready since "
               f"{ready.get('lastTransitionTime') or '?'}); Kubernetes gave the job up")
    elif ((node or {}).get("spec") or {}).get("unschedulable"):
        why = f"node {name} was drained while running the job, which was stopped"
    else:
        why = f"job's pod on node {name} was deleted by someone other than arkd; the job was stopped"
    return _measured(Outcome(LOST_CODE, why, name, _times(pod)[0], now), pod)


def node_ready(node: dict[str, Any] | None) -> bool:
    """The node answers: it exists and its kubelet reports it Ready."""
    return _condition(node, "Ready").get("status") == "True"


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def _pod_outcome(meta: dict[str, Any], pod: dict[str, Any] | None, node: str,
                 start: datetime | None, end: datetime | None) -> Outcome | None:
    if pod is None:
        return None
    pod_status = pod.get("status") or {}
    reason = pod_status.get("reason")
    annotations = meta.get("annotations", {})
    if reason == "Evicted":
        message = pod_status.get("message", "")
        if SCRATCH_EVICTION.search(message):
            return Outcome(SIGKILL_CODE, f"job was stopped for using more than its scratch space (disk) of "
                                         f"{annotations.get(ANN_SCRATCH) or '?'} MB: {message}", node, start, end)
        return Outcome(LOST_CODE, f"job was evicted from node {node}: {message}", node, start, end)
    if reason == "NodeLost" or pod_status.get("phase") == "Unknown":
        return Outcome(LOST_CODE, f"node {node or '?'} was lost while running the job", node, start, end)
    terminated = _container(pod).get("state", {}).get("terminated")
    if not terminated:
        if pod_status.get("phase") == "Failed":  # refused by its node (admission), never ran
            why = ": ".join(filter(None, (reason, pod_status.get("message")))) or "no reason given"
            return Outcome(LOST_CODE, f"job's pod failed on node {node or '?'} before it ran: {why}", node, start, end)
        return None
    code = int(terminated.get("exitCode", LOST_CODE))
    if (terminated.get("message") or "").startswith(REFUSED):
        return Outcome(LOST_CODE, "job's first pod was taken away from its node while arkd was not watching (a drain, a "
                                  "lost node); the job was not run a second time", node, start, end)
    if terminated.get("reason") == "OOMKilled":
        if limit := annotations.get(ANN_MEMORY):
            return Outcome(SIGKILL_CODE, f"job was killed for using more than its memory limit of {limit} MB",
                           node, start, end)
        return Outcome(SIGKILL_CODE, f"job was killed by the out-of-memory killer of node {node} (its queue sets no "
                                     f"memory limit: the node ran out)", node, start, end)
    if terminated.get("reason") not in (None, "Completed", "Error"):  # the runtime's, e.g. StartError
        detail = ": ".join(filter(None, (terminated.get("reason"), terminated.get("message"))))
        if NO_SHELL.search(detail):
            return Outcome(code if code else LOST_CODE, f"image {_image(pod)} has no /bin/sh, which runs ARC's job script: the "
                                                        f"VO's image needs a POSIX shell ({detail})", node, start, end)
        return Outcome(code if code else LOST_CODE, f"job's container ended with code {code}: {detail}", node, start, end)
    return Outcome(code, f"job exited with code {code}" if code else "", node, start, end)


def _processors(pod: dict[str, Any]) -> int | None:
    """The CPUs the job's container was given (its request, whole CPUs up)."""
    cpu = ((_spec_container(pod).get("resources") or {}).get("requests") or {}).get("cpu")
    return math.ceil(cpu_count(cpu)) if cpu else None


def _image(pod: dict[str, Any]) -> str:
    return _spec_container(pod).get("image", "?")


def _spec_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The job's container as the pod asked for it (_container: as it is)."""
    return ((pod.get("spec") or {}).get("containers") or [{}])[0]


def _container(pod: dict[str, Any] | None) -> dict[str, Any]:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _times(pod: dict[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    state = _container(pod).get("state") or {}
    if "terminated" in state:
        t = state["terminated"]
        return parse_time(t.get("startedAt")), parse_time(t.get("finishedAt"))
    if "running" in state:
        return parse_time(state["running"].get("startedAt")), None
    return None, None
