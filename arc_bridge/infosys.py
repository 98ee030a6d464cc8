"""What the ARC information system needs to know, computed from arkd's caches. Pure."""

from typing import Any

from .config import Config
from .outcome import parse_time
from .quantity import cpu_count, memory_mb
from .translate import LABEL_QUEUE

Obj = dict[str, Any]


def summarise(config: Config, nodes: list[Obj], jobs: list[Obj], pods: list[Obj]) -> dict[str, Any]:
    pod_of = {p["metadata"].get("labels", {}).get("job-name"): p for p in pods}
    node_info: dict[str, Any] = {}
    for node in nodes:
        alloc = node.get("status", {}).get("allocatable", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in node.get("status", {}).get("conditions", []))
        node_info[node["metadata"]["name"]] = {
            "slots": int(cpu_count(alloc.get("cpu", "0"))),
            "pmem": memory_mb(alloc.get("memory", "0")),
            "isavailable": ready and not node.get("spec", {}).get("unschedulable", False),
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

    queues = {}
    for name, queue in config.queues.items():
        members = [n for n, i in node_info.items()
                   if all(i["labels"].get(k) == v for k, v in queue.node_selector.items())]
        qjobs = [j for j in job_info.values() if j["queue"] == name]
        queues[name] = {
            "totalcpus": sum(node_info[n]["slots"] for n in members if node_info[n]["isavailable"]),
            "running": sum(1 for j in qjobs if j["status"] == "R"),
            "queued": sum(1 for j in qjobs if j["status"] == "Q"),
            "nodes": members,
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
    }
