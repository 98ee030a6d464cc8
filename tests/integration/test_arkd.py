"""The site's arkd and Kubernetes: every way a job can end reaches A-REX's control directory.

Each test submits through the stdlib client as a mapped user over arkd's socket, inside the CE
host, as the LRMS scripts do, and reads the result where A-REX reads it.
"""

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

OK_SCRIPT = "id -u > whoami; echo result > out.txt; exit 0\n"


def test_a_job_runs_as_its_user_in_its_session_directory_and_reports_success(site):
    job = site.new_job("ark-alice", OK_SCRIPT)
    result = site.submit(job)
    assert result.returncode == 0, result.stdout
    assert site.local_id(job).startswith("ark-")

    assert site.wait_done(job) == "0"
    assert (job.session / "out.txt").read_text() == "result\n"
    assert (job.session / "whoami").read_text().strip() == str(site.uid("ark-alice"))
    diag = site.diag(job)
    assert diag["nodename"] == site.node_name
    # the node, not the pod's host name the job script wrote: A-REX's accounting joins every line
    lines = Path(f"{job.session}.diag").read_text().splitlines()
    assert [line for line in lines if line.lower().startswith("nodename=")] == [f"nodename={site.node_name}"]
    assert diag["LRMSExitcode"] == "0"
    assert diag["LRMSStartTime"].endswith("Z") and diag["LRMSEndTime"].endswith("Z")


def test_finished_jobs_are_deleted_from_kubernetes_once_recorded(site):
    job = site.new_job("ark-alice", "exit 0\n")
    assert site.submit(job).returncode == 0
    site.wait_done(job)
    deadline = time.monotonic() + 30
    while any(job.grid_id.lower()[:20] in name for name in site.k8s_jobs()):
        assert time.monotonic() < deadline, "recorded Job was not deleted"
        time.sleep(0.2)


def test_a_non_zero_exit_is_reported_with_its_code(site):
    job = site.new_job("ark-bob", "echo failing >&2; exit 3\n")
    assert site.submit(job).returncode == 0
    assert site.wait_done(job) == "3 job exited with code 3"
    assert "failing" in site.controldir.job_file(job.grid_id, "errors").read_text()


def test_a_walltime_overrun_is_stopped_and_explained(site):
    job = site.new_job("ark-alice", "sleep 60\n", walltime="3")
    assert site.submit(job).returncode == 0
    assert site.wait_done(job, timeout=60) == "271 job exceeded its wall time limit of 3 s and was stopped"


def test_a_job_over_its_memory_limit_is_reported_as_out_of_memory(site):
    script = 'x=$(head -c 200000000 /dev/zero | tr "\\000" a); echo survived\n'
    job = site.new_job("ark-alice", script, memory="20")
    assert site.submit(job).returncode == 0
    assert site.wait_done(job, timeout=90) == "265 job was killed for using more than its memory limit of 20 MB"


def test_a_queue_without_limits_lets_a_job_use_more_than_it_asked(site):
    """Queue roomy: the request is the job's memory x count, and neither memory nor CPUs are
    limited, so the 200 MB that kill a job on the default queue are let be."""
    script = ('x=$(head -c 200000000 /dev/zero | tr "\\000" a); echo survived > out.txt; '
              'nproc > nproc.txt; echo "$TMPDIR" > tmpdir.txt\n')
    job = site.new_job("ark-alice", script, memory="20", count="2", queue="roomy")
    assert site.submit(job).returncode == 0, job
    manifest = json.loads(site.kubectl("get", "job", "-n", "ark-alpha", site.local_id(job), "-o", "json").stdout)
    resources = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "40Mi", "ephemeral-storage": "16Mi"}
    assert resources["limits"] == {"ephemeral-storage": "16Mi"}
    assert site.wait_done(job, timeout=90) == "0"
    assert (job.session / "out.txt").read_text() == "survived\n"
    assert (job.session / "nproc.txt").read_text() == "2\n"  # the slots it got, whatever the node has
    assert (job.session / "tmpdir.txt").read_text() == "/tmp\n"


def test_a_job_that_fills_its_scratch_is_stopped_naming_it(site):
    job = site.new_job("ark-alice", 'head -c 50000000 /dev/zero > "$TMPDIR/fill"; sleep 300\n', disk="10")
    assert site.submit(job).returncode == 0
    done = site.wait_done(job, timeout=240)
    assert done.startswith("265 job was stopped for using more than its scratch space (disk) of 10 MB: "), done


def test_a_whole_node_job_gets_all_of_its_node(site):
    """xRSL exclusiveexecution: the pod asks for the node's allocatable CPUs and memory, so nothing
    else runs beside it, and the job sizes its threads by them."""
    allocatable = json.loads(site.kubectl("get", "node", site.node_name, "-o",
                                          "jsonpath={.status.allocatable}").stdout)
    job = site.new_job("ark-alice", 'nproc > nproc.txt; echo "$OMP_NUM_THREADS" > omp.txt\n', exclusivenode="true")
    assert site.submit(job).returncode == 0
    manifest = json.loads(site.kubectl("get", "job", "-n", "ark-alpha", site.local_id(job), "-o", "json").stdout)
    requests = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": allocatable["cpu"], "memory": allocatable["memory"]}
    assert site.wait_done(job, timeout=120) == "0"
    cpus = str(int(allocatable["cpu"][:-1]) // 1000 if allocatable["cpu"].endswith("m") else allocatable["cpu"])
    assert (job.session / "omp.txt").read_text().strip() == (job.session / "nproc.txt").read_text().strip() == cpus


def test_a_vos_software_area_is_there_read_only(site):
    script = ('cat /srv/vo-alpha-software/VERSION > seen.txt; '
              'echo x 2> refused.txt > /srv/vo-alpha-software/mine || echo refused >> refused.txt\n')
    job = site.new_job("ark-alice", script)
    assert site.submit(job).returncode == 0
    assert site.wait_done(job) == "0"
    assert (job.session / "seen.txt").read_text() == "alpha software 1.0\n"
    assert "Read-only file system" in (job.session / "refused.txt").read_text()
    assert not (site.ce.root / "srv/vo-alpha-software/mine").exists()


def test_an_image_that_cannot_be_pulled_fails_after_the_grace_period(site):
    job = site.new_job("ark-alice", "true\n", runtime_0="ENV/CONTAINER", runtime_0_1="missing:1")
    assert site.submit(job).returncode == 0
    done = site.wait_done(job, timeout=90)
    assert done.startswith(f"-1 image {site.registry}/vo-alpha/missing:1 could not be pulled")


def test_an_image_without_a_shell_is_refused_at_submit_naming_the_image(site):
    """ARC's job script runs with /bin/sh, as with ARC's fork backend. arkd reads the image from
    the site registry at submit, and an image that has none (a distroless one, or noshell:1 whose
    last layer whites out /usr/bin/dash behind the merged-/usr /bin link) is refused with one line
    that says so, and nothing is created."""
    before = site.k8s_jobs()
    job = site.new_job("ark-alice", "true\n", runtime_0="ENV/CONTAINER", runtime_0_1="noshell:1")
    result = site.submit(job)
    image = f"{site.registry}/vo-alpha/noshell:1"
    assert result.returncode == 1, result.stdout
    assert result.stdout.strip() == (f"image {image} has no /bin/sh, which runs ARC's job script: the VO's image "
                                     "needs a POSIX shell (/bin/sh leads to /usr/bin/sh: no such file or directory)")
    assert site.k8s_jobs() == before
    # The answer is kept by image digest: the next submit of it is refused the same way.
    assert site.submit(site.new_job("ark-alice", "true\n", runtime_0="ENV/CONTAINER",
                                    runtime_0_1="noshell:1")).returncode == 1


def test_an_image_outside_the_vo_allowlist_is_refused_and_nothing_is_created(site):
    before = site.k8s_jobs()
    job = site.new_job("ark-alice", "true\n", runtime_0="ENV/CONTAINER", runtime_0_1="docker.io/library/debian:12")
    result = site.submit(job)
    assert result.returncode == 1
    assert result.stdout.strip() == ("image 'docker.io/library/debian:12' is not allowed for VO alpha "
                                     "(allowed: base:1, tools:2, missing:1, noshell:1)")
    assert site.k8s_jobs() == before
    assert "joboption_jobid" not in job.grami.read_text()


def test_a_hostile_grami_is_refused_with_one_line(site):
    job = site.new_job("ark-alice", "true\n")
    job.grami.write_text(job.grami.read_text() + "joboption_queue=$(touch /tmp/pwned)\n")
    result = site.submit(job)
    assert result.returncode == 1
    assert "unquoted shell character '$'" in result.stdout and result.stdout.count("\n") == 1
    assert not site.outside("/tmp/pwned").exists()


def test_a_user_cannot_submit_another_users_job_or_run_in_her_session_directory(site):
    job = site.new_job("ark-alice", "true\n")
    bob = site.uid("ark-bob")
    os.chown(job.grami, bob, bob)
    os.chown(job.script, bob, bob)
    result = site.submit(job, user="ark-bob")
    assert result.returncode == 1 and "belongs to another user" in result.stdout
    # Even with the job's control files his, the session directory is still Alice's.
    os.chown(site.controldir.job_file(job.grid_id, "local"), bob, bob)
    result = site.submit(job, user="ark-bob")
    assert result.returncode == 1
    assert "not a directory owned by uid" in result.stdout


def test_a_repeated_submit_never_makes_a_second_job(site):
    job = site.new_job("ark-alice", "sleep 5\n")
    assert site.submit(job).returncode == 0
    assert site.submit(job).returncode == 0
    assert sum(job.grid_id[:20] in name for name in site.k8s_jobs()) == 1
    assert site.wait_done(job) == "0"


def test_only_the_owner_may_cancel_and_a_cancelled_job_ends_as_cancelled(site):
    job = site.new_job("ark-alice", "sleep 120\n")
    assert site.submit(job).returncode == 0
    refused = site.client("ark-bob", "cancel", site.inside(job.grami))
    assert refused.returncode == 1 and "belongs to another user" in refused.stdout
    assert site.client("ark-alice", "cancel", site.inside(job.grami)).returncode == 0
    assert site.wait_done(job, timeout=60) == "271 job was cancelled"


def test_jobs_that_end_while_arkd_is_down_are_recorded_when_it_returns(site):
    job = site.new_job("ark-alice", "exit 4\n")
    assert site.submit(job).returncode == 0
    with site.arkd_down():
        time.sleep(8)
        assert not site.controldir.is_done(job.grid_id)
    assert site.wait_done(job, timeout=30) == "4 job exited with code 4"


def test_a_job_kubernetes_lost_is_reported_lost_not_forgotten(site):
    job = site.new_job("ark-alice", "sleep 60\n")
    assert site.submit(job).returncode == 0
    with site.arkd_down():
        site.kubectl("delete", "jobs", "-n", "ark-alpha", site.local_id(job), "--wait=true")
    assert site.wait_done(job, timeout=30).startswith("-1 ")


def test_only_arex_may_trigger_a_scan(site):
    controldir = site.config["controldir"]
    refused = site.client("ark-alice", "scan", controldir, "--period", "0")
    assert refused.returncode == 1 and "only A-REX" in refused.stdout
    assert site.client("root", "scan", controldir, "--period", "0").returncode == 0


def test_info_reports_the_node_and_running_jobs_to_root_only(site):
    refused = site.client("ark-bob", "info")
    assert refused.returncode == 1 and "only root" in refused.stdout
    job = site.new_job("ark-bob", "sleep 20\n")
    assert site.submit(job).returncode == 0
    deadline = time.monotonic() + 30
    while True:
        info = json.loads(site.client("root", "info").stdout)
        state = info["jobs"].get(site.local_id(job), {}).get("status")
        if state == "R" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state == "R"
    assert info["nodes"][site.node_name]["slots"] >= 1
    assert info["queues"]["default"]["running"] >= 1
    status = site.arc_bridge("status", "--socket", site.socket)
    assert status.returncode == 0, status.stderr
    status = status.stdout
    assert f"node {site.node_name}:" in status
    assert f"job {site.local_id(job)}: R queue=default" in status
    site.client("ark-bob", "cancel", site.inside(job.grami))
    site.wait_done(job)


def test_a_job_cancelled_before_it_reached_kubernetes_is_recorded_only_for_its_owner(site):
    job = site.new_job("ark-alice", "true\n")
    refused = site.client("ark-bob", "cancel", site.inside(job.grami))
    assert refused.returncode == 1 and "belongs to another user" in refused.stdout
    assert not site.controldir.is_done(job.grid_id)
    assert site.client("ark-alice", "cancel", site.inside(job.grami)).returncode == 0
    assert site.wait_done(job, timeout=10) == "-1 job was cancelled before it reached Kubernetes"


def test_the_sites_priority_classes_never_preempt_a_running_job(site):
    classes = json.loads(site.kubectl("get", "priorityclasses", "-o", "json").stdout)["items"]
    ours = {c["metadata"]["name"]: c.get("preemptionPolicy") for c in classes
            if c["metadata"]["name"] in site.config["priority_classes"]}
    assert ours == {name: "Never" for name in site.config["priority_classes"]}
