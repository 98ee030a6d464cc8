"""What arcinfo learns about the site: its nodes as execution environments, and the CPUs each
VO's users may still use, within the VO's quota."""

from arc_bridge.infosys import quota_cpus, summarise

QUEUE_LABEL = {"ark.nordugrid.org/queue": "default"}


def node(name, cpus="4", ready="True", unschedulable=False, labels=QUEUE_LABEL):
    return {"metadata": {"name": name, "labels": dict(labels)},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"capacity": {"cpu": cpus, "memory": "8Gi"},
                       "allocatable": {"cpu": cpus, "memory": "7680Mi"},
                       "conditions": [{"type": "Ready", "status": ready}],
                       "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64",
                                    "kernelVersion": "6.1.0-13-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)"}}}


def running(name, node_name, cpus, vo="alpha"):
    job = {"metadata": {"name": name, "labels": {"ark.nordugrid.org/queue": "default", "ark.nordugrid.org/vo": vo}},
           "spec": {"template": {"spec": {"containers": [{"resources": {"requests": {"cpu": cpus,
                                                                                      "memory": "1Gi"}}}]}}}}
    pod = {"metadata": {"labels": {"job-name": name}}, "spec": {"nodeName": node_name},
           "status": {"phase": "Running", "startTime": "2026-11-30T10:00:00Z"}}
    return job, pod


def quota(hard, used):
    return {"status": {"hard": {"cpu": hard, "memory": "8Gi"}, "used": {"cpu": used, "memory": "1Gi"}}}


def test_each_node_is_described_as_arc_describes_a_batch_node(config):
    info = summarise(config, [node("wn1")], [], [])
    assert info["nodes"]["wn1"] == {"slots": 4, "lcpus": 4, "pmem": 7680, "sysname": "Linux", "machine": "x86_64",
                                    "release": "6.1.0-13-amd64", "isavailable": True, "isfree": True, "usedslots": 0}


def test_a_queue_offers_the_free_cpus_of_its_available_nodes(config):
    job, pod = running("j1", "wn1", "3")
    nodes = [node("wn1"), node("wn2"), node("down", ready="False"), node("cordoned", unschedulable=True),
             node("other", labels={})]
    queue = summarise(config, nodes, [job], [pod])["queues"]["default"]
    assert (queue["totalcpus"], queue["freecpus"], queue["running"]) == (8, 5, 1)
    assert sorted(queue["nodes"]) == ["cordoned", "down", "wn1", "wn2"]


def test_a_vos_users_may_start_only_what_its_quota_leaves(config):
    job, pod = running("j1", "wn1", "3")
    nodes = [node("wn1"), node("wn2")]
    info = summarise(config, nodes, [job], [pod], {"alpha": quota("4", "3"), "beta": None})
    queue = info["queues"]["default"]
    assert queue["vo_freecpus"] == {"alpha": 1, "beta": 5}
    assert queue["totalcpus"] == 8  # beta has no quota: the queue may fill its nodes
    assert info["users"]["alice"] == "alpha"
    both = summarise(config, nodes, [job], [pod], {"alpha": quota("4", "3"), "beta": quota("2", "0")})
    assert both["queues"]["default"]["totalcpus"] == 6


def test_a_quota_counts_cpu_requests_under_either_name():
    assert quota_cpus(quota("4", "1500m")) == (4.0, 1.5)
    assert quota_cpus({"status": {"hard": {"requests.cpu": "2"}, "used": {}}}) == (2.0, 0.0)
    assert quota_cpus({"status": {"hard": {"memory": "1Gi"}}}) is None
    assert quota_cpus(None) is None
