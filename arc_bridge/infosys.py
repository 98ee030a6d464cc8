"""What the ARC information system needs to know, computed from arkd's caches. Pure."""

from typing import Any

from .config import Config
from .outcome import node_ready, parse_time
from .quantity import cpu_count, memory_mb
from .translate import LABEL_QUEUE

Obj = dict[str, Any]

# The kubelet names architectures as Go does; ARC expects `uname -m` (and publishes amd64 again).
MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x"}


def quota_cpus(quota: Obj | None) -> tuple[float, float] | None:
    """A VO's CPU quota from its ResourceQuota's status: (hard, used), None where it sets none."""
    status = (quota or {}).get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    key = next((k for k in ("requests.cpu", "cpu") if k in hard), None)
    if key is None:
        return None
    return cpu_count(hard[key]), cpu_count(used.get(key, "0"))


def summarise(config: Config, nodes: list[Obj], jobs: list[Obj], pods: list[Obj],
              quotas: dict[str, Obj | None] | None = None) -> dict[str, Any]:
    """The site as the infoprovider publishes it. `quotas`: each VO's ResourceQuota (by VO name),
    which caps what its users may still start and what a queue of quota-bound VOs can run."""
    pod_of = {p["metadata"].get("labels", {}).get("job-name"): p for p in pods}
    node_info: dict[str, Any] = {}
    for node in nodes:
        status = node.get("status", {})
        alloc, about = status.get("allocatable", {}), status.get("nodeInfo", {})
        node_info[node["metadata"]["name"]] = {
            "slots": int(cpu_count(alloc.get("cpu", "0"))),
            "lcpus": int(cpu_count(status.get("capacity", {}).get("cpu", "0"))),
            "pmem": memory_mb(alloc.get("memory", "0")),
            "sysname": about.get("operatingSystem", "").capitalize(),
            "machine": MACHINES.get(about.get("architecture", ""), about.get("architecture", "")),
            "release": about.get("kernelVersion", ""),
            "isavailable": node_ready(node) and not node.get("spec", {}).get("unschedulable", False),
            "labels": node["metadata"].get("labels", {}),
            "usedslots": 0,
        }

    job_info: dict[str, Any] = {}
    for job in jobs:
        meta = job["metadata"]
        pod = pod_of.get(meta["name"])
        container = job["spec"]["template"]["spec"]["containers"][0]
        cpus = int(cpu_count(container["resources"]["requests"]["cpu"]))
        phase = ((pod or {}).get("status") or {}).get("phase", "Pending")
        node = ((pod or {}).get("spec") or {}).get("nodeName", "")
        state = {"Running": "R", "Succeeded": "EXECUTED", "Failed": "EXECUTED"}.get(phase, "Q")
        started = parse_time(((pod or {}).get("status") or {}).get("startTime"))
        if state == "R" and node in node_info:
            node_info[node]["usedslots"] += cpus
        job_info[meta["name"]] = {
            "status": state,
            "queue": meta["labels"].get(LABEL_QUEUE, ""),
            "cpus": cpus,
            "mem": memory_mb(container["resources"]["requests"]["memory"]) * 1024,
            "nodes": [node] if node else [],
            "starttime": started.strftime("%Y%m%d%H%M%SZ") if started else "",
        }

    vo_cpus = {vo: quota_cpus(quota) for vo, quota in (quotas or {}).items()}
    queues = {}
    for name, queue in config.queues.items():
        matching = [n for n, i in node_info.items() if queue.node_selector.items() <= i["labels"].items()]
        members = [n for n in matching if node_info[n]["isavailable"]]
        qjobs = [j for j in job_info.values() if j["queue"] == name]
        total = sum(node_info[n]["slots"] for n in members)
        free = sum(max(0, node_info[n]["slots"] - node_info[n]["usedslots"]) for n in members)
        caps = [vo_cpus.get(vo) for vo in queue.vos]
        if caps and all(cap is not None for cap in caps):  # every VO of the queue is held to a quota
            total = min(total, int(sum(hard for hard, _ in caps)))
        queues[name] = {
            "totalcpus": total,
            "freecpus": free,
            # What each VO's users may still start here: the queue's free CPUs, within the VO's quota.
            "vo_freecpus": {vo: free if cap is None else min(free, max(0, int(cap[0] - cap[1])))
                            for vo, cap in zip(queue.vos, caps)},
            "running": sum(1 for j in qjobs if j["status"] == "R"),
            "queued": sum(1 for j in qjobs if j["status"] == "Q"),
            "nodes": matching,
            "maxwalltime": queue.max_walltime_seconds,
        }

    for info in node_info.values():
        info["isfree"] = info["isavailable"] and info["usedslots"] < info["slots"]
        del info["labels"]
    running = [j for j in job_info.values() if j["status"] == "R"]
    queued = [j for j in job_info.values() if j["status"] == "Q"]
    return {
        "lrms_type": "kubernetes",
        "totalcpus": sum(i["slots"] for i in node_info.values() if i["isavailable"]),
        "usedcpus": sum(j["cpus"] for j in running),
        "queuedcpus": sum(j["cpus"] for j in queued),
        "runningjobs": len(running),
        "queuedjobs": len(queued),
        "queues": queues,
        "jobs": job_info,
        "nodes": node_info,
        "users": {user: vo.name for vo in config.vos.values() for user in vo.users},
    }
