"""What the informers keep of each object: what arkd reads, not what a large cache would hold."""

from arc_bridge.informer import slim


def container():
    return {"name": "job", "image": "reg:5000/vo-alpha/base:1", "command": ["/bin/sh", "-c", "launcher"],
            "args": ["x" * 100_000], "resources": {"requests": {"cpu": "1", "memory": "64Mi"}},
            "env": [{"name": "ARK_USAGE_FILE", "value": "/dev/termination-log"}]}


def test_a_job_keeps_its_image_resources_and_labels_but_not_its_script_or_field_owners():
    job = {"metadata": {"name": "j", "labels": {"a": "b"}, "managedFields": [{"manager": "arkd"}]},
           "spec": {"activeDeadlineSeconds": 60, "template": {"spec": {"containers": [container()]}}},
           "status": {"active": 1}}
    slim(job)
    (kept,) = job["spec"]["template"]["spec"]["containers"]
    assert kept == {"name": "job", "image": "reg:5000/vo-alpha/base:1",
                    "resources": {"requests": {"cpu": "1", "memory": "64Mi"}},
                    "env": [{"name": "ARK_USAGE_FILE", "value": "/dev/termination-log"}]}
    assert job["metadata"] == {"name": "j", "labels": {"a": "b"}}
    assert job["spec"]["activeDeadlineSeconds"] == 60 and job["status"] == {"active": 1}


def test_a_pod_loses_the_same_and_keeps_its_node_and_status():
    pod = {"metadata": {"name": "p", "managedFields": []},
           "spec": {"nodeName": "wn1", "containers": [container()]},
           "status": {"phase": "Running"}}
    slim(pod)
    assert "command" not in pod["spec"]["containers"][0] and "args" not in pod["spec"]["containers"][0]
    assert pod["spec"]["nodeName"] == "wn1" and pod["status"] == {"phase": "Running"}
    assert "managedFields" not in pod["metadata"]
