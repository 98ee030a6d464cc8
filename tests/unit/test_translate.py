"""A GRAMI becomes exactly one safe Job, or a one-line refusal naming the problem."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from arc_bridge.config import parse_config
from arc_bridge.errors import ConfigError, JobRejected
from arc_bridge.job import job_from_grami
from arc_bridge.outcome import Usage, parse_usage
from arc_bridge.translate import REFUSED, Caller, build_job, k8s_name, largest_node, priority_class

from .conftest import EXAMPLES

GOLDEN = Path(__file__).parent / "golden" / "example-job.yaml"
ALICE = Caller(uid=20001, gid=20001, user="alice")
SESSION = "/var/spool/arc/sessiondir/Q7xVDmVbnYLnKDkOCqRbHm5mABFKDmABFKDmFmKKDmABFKDmHsOmgn"


def render(fields, config, caller=ALICE, script="true\n"):
    return build_job(job_from_grami(fields, config), caller, config, script)


def test_the_example_renders_to_the_golden_job():
    out = subprocess.run(
        [sys.executable, "-m", "arc_bridge.cli", "render", "--config", str(EXAMPLES / "bridge.yaml"),
         str(EXAMPLES / "job.grami"), "--uid", "20001", "--gid", "20001"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert yaml.safe_load(out) == yaml.safe_load(GOLDEN.read_text())


def test_the_pod_is_locked_down_and_runs_as_the_caller(fields, config):
    pod = render(fields, config)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsUser": 20001, "runAsGroup": 20001, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False


def test_only_the_session_directory_and_its_two_siblings_are_mounted(fields, config):
    pod = render(fields, config)["spec"]["template"]["spec"]
    paths = sorted(v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v)
    assert paths == [SESSION, f"{SESSION}.comment", f"{SESSION}.diag"]
    assert [v for v in pod["volumes"] if "hostPath" not in v] == [{"name": "scratch", "emptyDir": {}}]
    mounts = pod["containers"][0]["volumeMounts"]
    assert sorted(m["mountPath"] for m in mounts if m["name"] != "scratch") == paths


def test_a_shared_filesystem_mounts_subpaths_of_one_claim(fields, raw_config):
    from arc_bridge.config import parse_config

    raw_config["session_volume"] = {"type": "persistentVolumeClaim", "claim_name": "sessions"}
    pod = render(fields, parse_config(raw_config))["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "sessions", "persistentVolumeClaim": {"claimName": "sessions"}},
                              {"name": "scratch", "emptyDir": {}}]
    assert {m.get("subPath") for m in pod["containers"][0]["volumeMounts"]} - {None} == {
        Path(SESSION).name, Path(SESSION).name + ".diag", Path(SESSION).name + ".comment"}


def test_resources_deadline_queue_and_priority(fields, config):
    job = render(fields, config)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["backoffLimit"] == 0
    assert pod["nodeSelector"] == {"ark.nordugrid.org/queue": "default"}
    assert pod["priorityClassName"] == "ark-normal"


def container_of(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_queue_says_which_requests_become_limits(fields, raw_config):
    """Requests are always what the job asked for (memory x count); a queue may let jobs use
    memory beyond it (a factor, or no limit: page cache then never kills an I/O-heavy job) and
    idle CPUs beyond their count."""
    queue = raw_config["queues"]["default"]
    requests = {"cpu": "2", "memory": "2000Mi"}

    assert container_of(render(fields, parse_config(raw_config)))["resources"] == {
        "requests": requests, "limits": {"cpu": "2", "memory": "2000Mi"}}
    queue["memory_limit_factor"] = 1.5
    job = render(fields, parse_config(raw_config))
    assert container_of(job)["resources"]["limits"]["memory"] == "3000Mi"
    assert job["metadata"]["annotations"]["ark.nordugrid.org/memory-mb"] == "3000"
    queue.update(memory_limit_factor=None, cpu_limit="request_only")
    job = render(fields, parse_config(raw_config))
    assert container_of(job)["resources"] == {"requests": requests, "limits": {}}
    assert job["metadata"]["annotations"]["ark.nordugrid.org/memory-mb"] == ""


def test_scratch_is_the_jobs_disk_or_the_queues_default_at_tmpdir(fields, raw_config):
    def scratch(job):
        pod = job["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "scratch"]
        (mount,) = [m for m in container_of(job)["volumeMounts"] if m["name"] == "scratch"]
        env = {e["name"]: e.get("value") for e in container_of(job)["env"]}
        assert mount["mountPath"] == env["TMPDIR"] == "/tmp"
        return volume["emptyDir"], container_of(job)["resources"]

    empty, resources = scratch(render(fields, parse_config(raw_config)))
    assert empty == {} and "ephemeral-storage" not in resources["requests"]  # unbounded, none requested
    raw_config["queues"]["default"]["scratch_mb"] = 4096
    empty, resources = scratch(render(fields, parse_config(raw_config)))
    assert empty == {"sizeLimit": "4096Mi"}
    assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"] == "4096Mi"
    fields["joboption_disk"] = "300"
    empty, resources = scratch(render(fields, parse_config(raw_config)))
    assert empty == {"sizeLimit": "300Mi"} and resources["limits"]["ephemeral-storage"] == "300Mi"


def test_a_vos_mounts_are_read_only_at_their_host_paths(fields, raw_config):
    raw_config["vos"]["alpha"]["mounts"] = ["/cvmfs"]
    job = render(fields, parse_config(raw_config))
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "vo-mount-0", "hostPath": {"path": "/cvmfs", "type": "Directory"}} in volumes
    assert {"name": "vo-mount-0", "mountPath": "/cvmfs", "readOnly": True} in container_of(job)["volumeMounts"]


def node(name, cpu, memory, labels=None, unschedulable=False):
    return {"metadata": {"name": name, "labels": {"ark.nordugrid.org/queue": "default", **(labels or {})}},
            "spec": {"unschedulable": unschedulable}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def test_a_whole_node_job_gets_all_of_the_queues_largest_node(fields, config):
    nodes = [node("small", "2", "4Gi"), node("big", "7500m", "30Gi"), node("cordoned", "64", "1Ti", unschedulable=True),
             {**node("elsewhere", "32", "64Gi"), "metadata": {"name": "elsewhere", "labels": {}}}]
    size = largest_node(nodes, {"ark.nordugrid.org/queue": "default"})
    assert (size.cpu, size.memory) == ("7500m", "30Gi")
    fields["joboption_exclusivenode"] = "true"
    job = render_with_node(fields, config, size)
    resources = container_of(job)["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "7500m", "memory": "30Gi"}
    env = {e["name"]: e.get("value") for e in container_of(job)["env"]}
    assert env["OMP_NUM_THREADS"] == "7"
    with pytest.raises(JobRejected, match="queue 'default' has no node to give a whole-node job"):
        render_with_node(fields, config, largest_node([], {}))


def render_with_node(fields, config, size):
    return build_job(job_from_grami(fields, config), ALICE, config, "true\n", size)


def test_threads_match_the_slots(fields, config):
    env = {e["name"]: e.get("value") for e in container_of(render(fields, config))["env"]}
    assert env["OMP_NUM_THREADS"] == "2"  # GNU nproc says the same


@pytest.mark.parametrize(("key", "value", "message"), [
    ("memory_limit_factor", 0.5, "queues.default.memory_limit_factor: expected a number from 1 to 100, or null"),
    ("memory_limit_factor", "lots", "queues.default.memory_limit_factor: expected a number"),
    ("cpu_limit", "maybe", "queues.default.cpu_limit: expected one of enforced, request_only"),
    ("scratch_mb", -1, "queues.default.scratch_mb: expected a whole number from 0"),
])
def test_bad_queue_resource_settings_name_their_key(raw_config, key, value, message):
    raw_config["queues"]["default"][key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw_config)


def test_priority_bands():
    classes = {"low": 0, "normal": 40, "high": 80}
    assert [priority_class(p, classes) for p in (0, 39, 40, 80, 100)] == ["low", "low", "normal", "high", "high"]
    assert priority_class(10, {"high": 80}) is None


def test_the_name_derives_from_the_arc_id_only_and_survives_case():
    assert k8s_name("AbC123") == k8s_name("AbC123")
    assert k8s_name("AbC123") != k8s_name("abc123")
    assert len(k8s_name("a" * 63)) <= 63


@given(st.from_regex(r"[A-Za-z0-9]{1,63}", fullmatch=True))
def test_every_arc_id_gives_a_valid_kubernetes_name(grid_id):
    import re

    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", k8s_name(grid_id)) and len(k8s_name(grid_id)) <= 63


def test_images_come_from_the_vo_registry_by_rte_or_default(fields, config):
    image = lambda f: render(f, config)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image(fields) == "registry.example.org:5000/vo-alpha/tools:2"
    del fields["joboption_runtime_0"]
    assert image(fields) == "registry.example.org:5000/vo-alpha/base:1"
    fields["joboption_runtime_0"] = "ENV/CONTAINER"
    fields["joboption_runtime_0_1"] = "tools:2"
    assert image(fields) == "registry.example.org:5000/vo-alpha/tools:2"


REFUSALS = [
    ({"joboption_runtime_0": "ENV/CONTAINER", "joboption_runtime_0_1": "evil.example/root:latest"},
     "image 'evil.example/root:latest' is not allowed for VO alpha"),
    ({"joboption_runtime_0": "ENV/CONTAINER"}, "needs the image name"),
    ({"joboption_runtime_0": "APPS/UNKNOWN"}, "runtime environment 'APPS/UNKNOWN' is not offered"),
    ({"joboption_queue": "express"}, "queue 'express' does not exist"),
    ({"joboption_memory": "-5"}, "memory (MB per slot) must be a whole number"),
    ({"joboption_memory": "0"}, "memory (MB per slot) must be a whole number"),
    ({"joboption_memory": "99999999999"}, "memory (MB per slot)"),
    ({"joboption_count": "0"}, "slot count must be"),
    ({"joboption_count": "1e3"}, "slot count must be"),
    ({"joboption_walltime": "9999999"}, "wall time (s) must be a whole number from 1 to 172800"),
    ({"joboption_priority": "101"}, "priority must be"),
    ({"joboption_numnodes": "2"}, "multi-node jobs are not supported"),
    ({"joboption_disk": "99999999999"}, "disk (MB) must be a whole number from 1 to 1048576"),
    ({"joboption_disk": "1.5"}, "disk (MB) must be a whole number"),
    ({"joboption_directory": SESSION + "/../../../../etc"}, "is not"),
    ({"joboption_directory": "/etc/Q7xVDmVbnYLnKDkOCqRbHm5mABFKDmABFKDmFmKKDmABFKDmHsOmgn"}, "is not <session root>/"),
    ({"joboption_directory": "sessiondir/x"}, "not a plain absolute path"),
    ({"joboption_directory": SESSION + "\n/etc"}, "not a plain absolute path"),
    ({"joboption_directory": "/var/spool/arc/sessiondir//Q7xVDmVbnYLnKDkOCqRbHm5mABFKDmABFKDmFmKKDmABFKDmHsOmgn"},
     "not a normalised path"),
    ({"joboption_gridid": "../x"}, "is not an ARC job id"),
    ({"joboption_gridid": "Abc_DEF"}, "is not an ARC job id"),
    ({"joboption_queue": ""}, "GRAMI has no joboption_queue"),
]


@pytest.mark.parametrize("change, message", REFUSALS, ids=[m for _, m in REFUSALS])
def test_bad_job_descriptions_are_refused_with_a_reason(fields, config, change, message):
    fields.update(change)
    with pytest.raises(JobRejected) as e:
        render(fields, config)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_callers_outside_every_vo_or_queue_or_root_are_refused(fields, config, raw_config):
    with pytest.raises(JobRejected, match="never run as root"):
        render(fields, config, Caller(0, 0, "root"))
    with pytest.raises(JobRejected, match="belongs to no VO"):
        render(fields, config, Caller(3000, 3000, "mallory"))
    from arc_bridge.config import parse_config

    raw_config["queues"]["default"]["vos"] = ["beta"]
    with pytest.raises(JobRejected, match="does not accept VO alpha"):
        render(fields, parse_config(raw_config))


def test_binary_or_huge_job_scripts_are_refused(fields, config):
    with pytest.raises(JobRejected, match="job script"):
        render(fields, config, script="x" * (600 * 1024))
    with pytest.raises(JobRejected, match="job script"):
        render(fields, config, script="a\0b")


def test_cputime_bounds_walltime_when_no_walltime_is_given(fields, config):
    del fields["joboption_walltime"]
    fields["joboption_cputime"] = "600"
    assert render(fields, config)["spec"]["activeDeadlineSeconds"] == 300  # 600 s of CPU over 2 slots


def test_a_vos_cap_bounds_the_priority_its_jobs_are_ranked_with(fields, raw_config):
    fields["joboption_priority"] = "100"
    raw_config["vos"]["alpha"]["max_priority"] = 45
    pod = render(fields, parse_config(raw_config))["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "ark-normal"  # 45 caps 100: above ark-normal's 40, below ark-high's 80


def test_a_job_leaves_a_node_that_stopped_answering_after_the_sites_grace(fields, raw_config):
    raw_config["node_lost_seconds"] = 45
    pod = render(fields, parse_config(raw_config))["spec"]["template"]["spec"]
    assert {(t["key"], t["effect"], t["tolerationSeconds"]) for t in pod["tolerations"]} == {
        ("node.kubernetes.io/not-ready", "NoExecute", 45), ("node.kubernetes.io/unreachable", "NoExecute", 45)}


def run_pod(command, comment, job_uid, pod_name, cgroup=None, usage=None):
    """The container's command as the pod runs it: the first process of a PID namespace of its own
    (it kills whatever the job left), with the Job's uid, the pod's name and its cgroup files."""
    env = {"PATH": "/usr/bin:/bin", "ARK_COMMENT_FILE": str(comment), "ARK_JOB_UID": job_uid,
           "HOSTNAME": pod_name, "ARK_NODE": "node-1", "ARK_CGROUP": str(cgroup or "/nonexistent"),
           "ARK_USAGE_FILE": str(usage or "/dev/null")}
    isolated = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child"]
    return subprocess.run(isolated + command, env=env, capture_output=True, text=True, timeout=20)


def test_a_second_pod_of_the_same_job_does_not_run_it_again(fields, config, tmp_path):
    """A pod taken from its node leaves the Job controller making another, which must not run
    the payload a second time; a resubmitted job (a new Job) runs."""
    marker = tmp_path / "ran"
    command = container_of(build_job(job_from_grami(fields, config), ALICE, config,
                                     f"echo ran >> {marker}\n"))["command"]
    comment = tmp_path / "session.comment"
    comment.touch()
    assert run_pod(command, comment, "uid-1", "pod-a").returncode == 0
    usage = tmp_path / "termination-log"
    second = run_pod(command, comment, "uid-1", "pod-b", usage=usage)
    assert second.returncode == 1 and usage.read_text() == REFUSED + "\n"
    assert marker.read_text() == "ran\n"
    assert comment.read_text().splitlines() == [
        "ark: Job uid-1 started in pod pod-a on node node-1",
        "ark: pod pod-b does not run the job a second time"]
    assert run_pod(command, comment, "uid-2", "pod-c").returncode == 0
    assert marker.read_text() == "ran\nran\n"


def test_the_pod_reports_its_cgroups_usage_after_the_job_and_what_it_left_running(fields, config, tmp_path):
    """The job's exit code stands; what it left in the background is killed before the cgroup's
    CPU time and peak memory are reported, so it cannot change them afterwards."""
    cgroup = tmp_path / "cgroup"
    (cgroup / "cpuacct").mkdir(parents=True)
    (cgroup / "memory").mkdir()
    (cgroup / "cpuacct" / "cpuacct.stat").write_text("user 1234\nsystem 56\n")
    (cgroup / "memory" / "memory.max_usage_in_bytes").write_text("104857600\n")
    leftover = tmp_path / "leftover"
    script = f"(sleep 1; echo still here > {leftover}) &\nexit 3\n"
    command = container_of(build_job(job_from_grami(fields, config), ALICE, config, script))["command"]
    comment, usage = tmp_path / "session.comment", tmp_path / "termination-log"
    comment.touch()
    assert run_pod(command, comment, "uid-1", "pod-a", cgroup, usage).returncode == 3
    assert parse_usage(usage.read_text()) == Usage(user_seconds=12.34, kernel_seconds=0.56, max_memory_kb=102400)
    time.sleep(2)
    assert not leftover.exists()


def test_a_stop_reaches_the_job_script_which_may_end_cleanly(fields, config, tmp_path):
    """Kubernetes stops a pod (cancel, drain, wall time) with SIGTERM to its first process, which
    as a PID namespace's init would ignore it; the launcher passes it on to the job script."""
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    script = f"trap 'echo stopped > {stopped}; exit 0' TERM\necho > {ready}\nwhile :; do sleep 0.2; done\n"
    command = container_of(build_job(job_from_grami(fields, config), ALICE, config, script))["command"]
    comment = tmp_path / "session.comment"
    comment.touch()
    env = {"PATH": "/usr/bin:/bin", "ARK_COMMENT_FILE": str(comment), "ARK_JOB_UID": "uid-1", "HOSTNAME": "pod-a",
           "ARK_NODE": "node-1", "ARK_CGROUP": "/nonexistent", "ARK_USAGE_FILE": "/dev/null"}
    pod = subprocess.Popen(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child"] + command,
                           env=env)
    try:
        # Generous bounds: on a machine busy with a site's bring-up a shell can take seconds to start,
        # and a stop sent before the script has set its trap would end it with 143.
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline, "the job script did not start within 60 s"
            time.sleep(0.05)
        children = Path(f"/proc/{pod.pid}/task/{pod.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGTERM)  # the launcher, init of the pod's PID namespace
        assert pod.wait(timeout=60) == 0
    finally:
        pod.kill()
    assert stopped.read_text() == "stopped\n"
