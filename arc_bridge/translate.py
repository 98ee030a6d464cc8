"""Translate a checked JobRequest into a batch/v1 Job manifest. Pure: no I/O, no clients."""

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from .config import VO, Config, Queue
from .errors import JobRejected
from .job import JobRequest
from .quantity import cpu_count, memory_mb

MANAGED_BY = {"app.kubernetes.io/managed-by": "arkd"}
LABEL_JOB_ID = "ark.nordugrid.org/job-id"
LABEL_UID = "ark.nordugrid.org/uid"
LABEL_VO = "ark.nordugrid.org/vo"
LABEL_QUEUE = "ark.nordugrid.org/queue"
ANN_SESSION = "ark.nordugrid.org/session-dir"
ANN_CANCELLED = "ark.nordugrid.org/cancelled"
# Why arkd stopped a job whose pod someone else took away (a drain, a deleted pod): its message.
ANN_STOPPED = "ark.nordugrid.org/stopped"
ANN_WALLTIME = "ark.nordugrid.org/walltime"
ANN_MEMORY = "ark.nordugrid.org/memory-mb"  # the memory limit; empty where the queue sets none
ANN_SCRATCH = "ark.nordugrid.org/scratch-mb"  # the scratch limit; empty where there is none
# The job's node-local scratch: an emptyDir, so it counts against the job's ephemeral-storage limit
# and goes with the pod. At /tmp, where programs write whatever TMPDIR says.
SCRATCH = "/tmp"
SELECTOR = "app.kubernetes.io/managed-by=arkd"
# Where the launcher leaves the job's usage for the kubelet (the pod's termination message).
USAGE_FILE = "/dev/termination-log"
# The Job controller labels each pod with its Job's uid, which a resubmitted job does not share.
JOB_UID_FIELD = "metadata.labels['controller-uid']"
# The script is one argument of the container's command, and the kernel refuses to start a
# program with an argument of 128 KiB or more (MAX_ARG_STRLEN, with its terminating NUL).
MAX_SCRIPT_BYTES = 128 * 1024 - 1

# Taints a node gets when it stops answering; a job's pod leaves such a node (and its job fails)
# after the site's node_lost_seconds.
NODE_LOST_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")

# The container's first process runs ARC's job script, then reports what the job's cgroup used.
# - The job script writes its own accounting into <session>.diag; its stdout and stderr (not the
#   payload's, which go where the job description says) belong in <session>.comment, which A-REX
#   appends to the job's error log, exactly as the fork backend does.
# - A pod that is deleted while it runs (drain, a lost node) counts in Kubernetes 1.20 as neither
#   active nor failed, so the Job controller makes another; arkd deletes the Job at once, and the
#   mark in .comment keeps that second pod from running the job again if it starts first (it
#   says so in its termination message, REFUSED).
# - The first process of a PID namespace gets no signal it does not catch: a stop (cancel, drain,
#   wall time) is passed on to the job script, which then has the pod's grace period to end.
# - When the script has ended, whatever it left running is killed, and the cgroup's CPU time and
#   peak memory (cgroup v1 or v2) go to the termination message, which the kubelet puts in the
#   pod's status: the site's measurement for the .diag, taken after the job can no longer act.
REFUSED = "ark-refused: a second pod of the Job"
_LAUNCHER = '''exec >>"$ARK_COMMENT_FILE" 2>&1
started="ark: Job $ARK_JOB_UID started"
while IFS= read -r line; do
  case $line in "$started"*)
    echo "ark: pod $HOSTNAME does not run the job a second time"
    echo "@REFUSED@" >"$ARK_USAGE_FILE"
    exit 1;;
  esac
done <"$ARK_COMMENT_FILE"
echo "$started in pod $HOSTNAME on node $ARK_NODE"
trap 'kill -TERM $child 2>/dev/null' TERM
/bin/sh -c "$1" "$0" &
child=$!
while :; do
  wait $child
  code=$?
  kill -0 $child 2>/dev/null || break
done
kill -9 -1 2>/dev/null
for f in cpuacct/cpuacct.stat memory/memory.max_usage_in_bytes cpu.stat memory.peak; do
  [ -r "$ARK_CGROUP/$f" ] || continue
  while read -r line; do echo "$f $line"; done <"$ARK_CGROUP/$f"
done >"$ARK_USAGE_FILE"
exit $code
'''.replace("@REFUSED@", REFUSED)


@dataclass(frozen=True)
class NodeSize:
    """What the largest node of a queue can give one pod (its allocatable), as quantities."""

    cpu: str
    memory: str


def largest_node(nodes: list[dict[str, Any]], selector: dict[str, str]) -> NodeSize | None:
    """The queue's largest schedulable node, by CPUs then memory; None if it has none."""
    fits = [n for n in nodes if not (n.get("spec") or {}).get("unschedulable")
            and selector.items() <= n["metadata"].get("labels", {}).items()]
    sizes = [(n.get("status") or {}).get("allocatable") or {} for n in fits]
    sizes = [a for a in sizes if a.get("cpu") and a.get("memory")]
    if not sizes:
        return None
    best = max(sizes, key=lambda a: (cpu_count(a["cpu"]), memory_mb(a["memory"])))
    return NodeSize(best["cpu"], best["memory"])


@dataclass(frozen=True)
class Caller:
    """Who asked, as the kernel reported it (SO_PEERCRED) and the password database named it."""

    uid: int
    gid: int
    user: str


def k8s_name(grid_id: str) -> str:
    """A DNS-1123 name derived only from the ARC id, so a repeated submit finds the same Job.

    ARC ids mix cases but Kubernetes names are lower-case: a short hash of the exact id keeps two
    ids that differ only in case apart.
    """
    digest = hashlib.sha256(grid_id.encode()).hexdigest()[:10]
    return f"ark-{grid_id.lower()[:40]}-{digest}"


def choose_image(job: JobRequest, vo: VO, image_rte: str) -> str:
    chosen: dict[str, str] = {}
    for rte in job.runtime_environments:
        if rte.name == image_rte:
            if not rte.options:
                raise JobRejected(f"runtime environment {image_rte} needs the image name as its option")
            image = rte.options[0]
            if image not in vo.images:
                raise JobRejected(
                    f"image {image[:80]!r} is not allowed for VO {vo.name} (allowed: {', '.join(vo.images)})"
                )
            chosen[rte.name] = image
        elif rte.name not in vo.runtime_environments:
            raise JobRejected(f"runtime environment {rte.name[:80]!r} is not offered to VO {vo.name} here")
        elif (image := vo.runtime_environments[rte.name]) is not None:
            chosen[rte.name] = image
    if len(set(chosen.values())) > 1:
        pairs = ", ".join(f"{r} needs {i}" for r, i in chosen.items())
        raise JobRejected(f"runtime environments ask for different images: {pairs}")
    return next(iter(chosen.values()), vo.default_image)


def priority_class(priority: int, classes: dict[str, int]) -> str | None:
    eligible = [(low, name) for name, low in classes.items() if low <= priority]
    return max(eligible)[1] if eligible else None


def build_job(job: JobRequest, caller: Caller, config: Config, script: str,
              node: NodeSize | None = None) -> dict[str, Any]:
    """The Job for `job`, run as `caller`, or JobRejected naming what is not allowed. A whole-node
    job gets `node`, the queue's largest node."""
    if caller.uid == 0 or caller.gid == 0:
        raise JobRejected("jobs never run as root: map grid users to unprivileged accounts")
    vo = config.vo_of_user(caller.user)
    if vo is None:
        raise JobRejected(f"local user {caller.user!r} belongs to no VO configured for Kubernetes")
    queue = config.queues[job.queue]
    if vo.name not in queue.vos:
        raise JobRejected(f"queue {queue.name!r} does not accept VO {vo.name}")
    script_bytes = len(script.encode())
    if script_bytes > MAX_SCRIPT_BYTES or "\0" in script:
        raise JobRejected(f"job script is {script_bytes} bytes or binary; at most {MAX_SCRIPT_BYTES} bytes of text")
    image = vo.image_ref(choose_image(job, vo, config.image_rte))

    session = str(job.session_dir)
    labels = {
        **MANAGED_BY,
        LABEL_JOB_ID: job.grid_id,
        LABEL_UID: str(caller.uid),
        LABEL_VO: vo.name,
        LABEL_QUEUE: job.queue,
    }
    if job.whole_node and node is None:
        raise JobRejected(f"queue {queue.name!r} has no node to give a whole-node job (exclusiveexecution)")
    resources, memory_limit, scratch = _resources(job, queue, node if job.whole_node else None)
    threads = int(cpu_count(resources["requests"]["cpu"]))
    volumes, mounts = _session_storage(job, config)
    volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": f"{scratch}Mi"} if scratch else {}})
    mounts.append({"name": "scratch", "mountPath": SCRATCH})
    for i, path in enumerate(vo.mounts):  # the VO's software areas, as the node has them
        volumes.append({"name": f"vo-mount-{i}", "hostPath": {"path": str(path), "type": "Directory"}})
        mounts.append({"name": f"vo-mount-{i}", "mountPath": str(path), "readOnly": True})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsUser": caller.uid,
            "runAsGroup": caller.gid,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "job",
                "image": image,
                "command": ["/bin/sh", "-c", _LAUNCHER, "ark-job", script],
                "workingDir": session,
                # OpenMP runtimes, GNU nproc and ARC's own RTEs size their threads by these.
                "env": [{"name": "ARK_COMMENT_FILE", "value": f"{session}.comment"},
                        {"name": "ARK_JOB_UID", "valueFrom": {"fieldRef": {"fieldPath": JOB_UID_FIELD}}},
                        {"name": "ARK_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "ARK_CGROUP", "value": "/sys/fs/cgroup"},
                        {"name": "ARK_USAGE_FILE", "value": USAGE_FILE},
                        {"name": "TMPDIR", "value": SCRATCH},
                        {"name": "OMP_NUM_THREADS", "value": str(threads)}],
                "resources": resources,
                "terminationMessagePath": USAGE_FILE,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
        "tolerations": [{"key": taint, "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": config.node_lost_seconds} for taint in NODE_LOST_TAINTS],
    }
    if queue.node_selector:
        pod_spec["nodeSelector"] = dict(queue.node_selector)
    # A VO's jobs rank no higher than its cap, whatever its users ask for.
    if (pc := priority_class(min(job.priority, vo.max_priority), config.priority_classes)) is not None:
        pod_spec["priorityClassName"] = pc

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": k8s_name(job.grid_id),
            "namespace": vo.namespace,
            "labels": labels,
            "annotations": {
                ANN_SESSION: session,
                ANN_WALLTIME: str(job.walltime_seconds),
                ANN_MEMORY: str(memory_limit or ""),
                ANN_SCRATCH: str(scratch or ""),
            },
        },
        "spec": {
            # ARC retries at its own level; a second pod would run the payload twice.
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.walltime_seconds,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _resources(job: JobRequest, queue: Queue, node: NodeSize | None) -> tuple[dict[str, Any], int | None, int]:
    """The container's requests and limits; its memory limit (MB, None: none) and scratch (MB, 0:
    unbounded). Requests are what the job asked for (or all of `node`, for a whole-node job); the
    queue says which become limits."""
    scratch = job.disk_mb or queue.scratch_mb
    if node is not None:
        requests = {"cpu": node.cpu, "memory": node.memory}
        if scratch:
            requests["ephemeral-storage"] = f"{scratch}Mi"
        return {"requests": requests, "limits": dict(requests)}, memory_mb(node.memory), scratch
    memory = job.memory_mb * job.count
    requests = {"cpu": str(job.count), "memory": f"{memory}Mi"}
    limits = {"cpu": str(job.count)} if queue.cpu_limit else {}
    memory_limit = None
    if queue.memory_limit_factor is not None:
        memory_limit = math.ceil(memory * queue.memory_limit_factor)
        limits["memory"] = f"{memory_limit}Mi"
    if scratch:
        requests["ephemeral-storage"] = limits["ephemeral-storage"] = f"{scratch}Mi"
    return {"requests": requests, "limits": limits}, memory_limit, scratch


def _session_storage(job: JobRequest, config: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The session directory and its .diag/.comment siblings at their A-REX paths, nothing else.

    The ARC job script writes <session>.diag and <session>.comment beside the session directory,
    so those two files are mounted individually rather than the whole session root, which holds
    other users' jobs.
    """
    session = job.session_dir
    names = {"session": session.name, "diag": f"{session.name}.diag", "comment": f"{session.name}.comment"}
    if config.session_volume.type == "hostPath":
        kinds = {"session": "Directory", "diag": "File", "comment": "File"}
        volumes = [
            {"name": v, "hostPath": {"path": str(session.parent / n), "type": kinds[v]}} for v, n in names.items()
        ]
        mounts = [{"name": v, "mountPath": str(session.parent / n)} for v, n in names.items()]
        return volumes, mounts
    # A shared filesystem: one claim holds the session root, each mount takes its own subPath.
    volumes = [{"name": "sessions", "persistentVolumeClaim": {"claimName": config.session_volume.claim_name}}]
    mounts = [{"name": "sessions", "mountPath": str(session.parent / n), "subPath": n} for n in names.values()]
    return volumes, mounts
