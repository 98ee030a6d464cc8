"""Grid jobs from the ARC client on this machine, through the site's A-REX and arkd, as pods on its
Kubernetes, and back: the all-in-one site as Salt installs it (tests/conftest.py)."""

import json
import re
import subprocess
from xml.etree import ElementTree

import pytest

from arc_bridge.quantity import cpu_count, memory_mb

pytestmark = pytest.mark.site


def xrsl(**attrs: str) -> str:
    return "&" + "".join(f'({k}={v})' for k, v in attrs.items())


def run_to_the_end(arc, tmp_path, **attrs: str):
    """Submit, wait for Finished, bring the outputs back with arcget: the results directory."""
    job = arc.submit(xrsl(stdout='"stdout.txt"', **attrs), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Finished"
    return arc.get(job, tmp_path / "results")


def test_a_job_with_an_input_file_returns_its_output_with_arcget(arc, tmp_path):
    (tmp_path / "in.txt").write_text("hello grid\n")
    results = run_to_the_end(arc, tmp_path, executable='"/bin/sh"',
                             arguments='"-c" "tr a-z A-Z < in.txt > out.txt; id -u; cat /etc/ark-image"',
                             inputfiles='("in.txt" "")', outputfiles='("out.txt" "")', jobname='"io"')
    assert (results / "out.txt").read_text() == "HELLO GRID\n"
    # The mapped account's uid, in the VO's default image.
    assert (results / "stdout.txt").read_text() == "20001\nbase:1\n"


def test_a_job_names_its_image_with_the_image_rte(arc, tmp_path):
    results = run_to_the_end(arc, tmp_path, executable='"/bin/cat"', arguments='"/etc/ark-image"',
                             runtimeenvironment='"ENV/CONTAINER" "tools:2"', jobname='"image-rte"')
    assert (results / "stdout.txt").read_text() == "tools:2\n"


def test_a_vo_rte_runs_the_job_in_the_image_it_maps_to(arc, tmp_path):
    results = run_to_the_end(arc, tmp_path, executable='"/bin/cat"', arguments='"/etc/ark-image"',
                             runtimeenvironment='"APPS/ALPHA/TOOLS-2"', jobname='"vo-rte"')
    assert (results / "stdout.txt").read_text() == "tools:2\n"


def test_an_rte_with_parameters_reaches_the_job_script_intact(arc, tmp_path):
    """A-REX passes an RTE's options to its script in the job script; ARK's script takes them."""
    results = run_to_the_end(arc, tmp_path, executable='"/bin/cat"', arguments='"/etc/ark-image"',
                             runtimeenvironment='"APPS/ALPHA/TOOLS-2" "--verbose" "two words"', jobname='"rte-options"')
    assert (results / "stdout.txt").read_text() == "tools:2\n"


def test_env_proxy_puts_the_delegated_proxy_in_the_session_directory(arc, tmp_path):
    """ARC's own ENV/PROXY: the job finds its proxy in its session directory through X509_USER_PROXY."""
    results = run_to_the_end(arc, tmp_path, executable='"/bin/sh"',
                             arguments='"-c" "test $X509_USER_PROXY = $PWD/user.proxy && cp $X509_USER_PROXY proxy.pem"',
                             runtimeenvironment='"ENV/PROXY"', outputfiles='("proxy.pem" "")', jobname='"proxy"')
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-in",
                              str(results / "proxy.pem")], capture_output=True, text=True, check=True).stdout
    # A proxy of the grid user's own certificate: her subject with a proxy's CN appended.
    assert subject.startswith("subject=/O=Grid/O=ARK Example/CN=Alice/CN="), subject


def test_a_job_exiting_3_fails_with_code_3(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sh"', arguments='"-c" "exit 3"', jobname='"exit3"'), cwd=tmp_path)
    assert arc.wait(job, states={"Failed"}, timeout=240) == "Failed"
    assert arc.details(job)["Exit Code"] == "3"


def test_a_walltime_overrun_fails_with_a_clear_message(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sleep"', arguments='"600"', walltime='"PT10S"', jobname='"overrun"'),
                     cwd=tmp_path)
    assert arc.wait(job, states={"Failed"}, timeout=300) == "Failed"
    assert arc.details(job)["Job Error"] == "LRMS error: (271) job exceeded its wall time limit of 10 s and was stopped"


def test_arckill_ends_a_running_job_as_killed(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sleep"', arguments='"600"', jobname='"victim"'), cwd=tmp_path)
    arc.wait(job, states={"Running"}, timeout=240)
    arc.kill(job)
    assert arc.wait(job, states={"Killed"}, timeout=240) == "Killed"


def test_an_image_outside_the_vo_allowlist_is_refused_at_submit(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/true"', runtimeenvironment='"ENV/CONTAINER" "evil/root:1"',
                          jobname='"evil"'), cwd=tmp_path)
    assert arc.wait(job, states={"Failed"}, timeout=240) == "Failed"
    assert arc.details(job)["Job Error"] == "Job submission to LRMS failed"
    assert ("ERROR: image 'evil/root:1' is not allowed for VO alpha "
            "(allowed: base:1, tools:2, missing:1, noshell:1)") in arc.job_log(job)


def test_an_image_without_a_shell_is_refused_at_submit(arc, tmp_path):
    """The grid user learns at submit, from arcstat and A-REX's log of her job, that the image she
    chose cannot run ARC's job script."""
    job = arc.submit(xrsl(executable='"/bin/true"', runtimeenvironment='"ENV/CONTAINER" "noshell:1"',
                          jobname='"noshell"'), cwd=tmp_path)
    assert arc.wait(job, states={"Failed"}, timeout=240) == "Failed"
    assert arc.details(job)["Job Error"] == "Job submission to LRMS failed"
    assert "has no /bin/sh, which runs ARC's job script: the VO's image needs a POSIX shell" in arc.job_log(job)


def controldir_diag(grid_site, job: str) -> list[str]:
    """The job's .diag as A-REX took it into its control directory, where its accounting reads it."""
    grid_id = job.rstrip("/").rsplit("/", 1)[-1]
    controldir = grid_site.with_role("ce").root / "var/spool/arc/jobstatus"
    (diag,) = controldir.glob(f"**/job.{grid_id}.diag")
    return diag.read_text().splitlines()


def last_value(diag: list[str], key: str) -> str:
    """A key's value as A-REX's accounting reads it: any case, the last line wins."""
    return [line.split("=", 1)[1] for line in diag if line.split("=", 1)[0].lower() == key.lower()][-1]


def test_the_accounting_names_the_node_that_ran_the_job(grid_site, arc, tmp_path):
    """A-REX's accounting joins every nodename line of the job's .diag: the job script writes the
    pod's host name, arkd replaces it with the Kubernetes node, as ARC's batch backends do."""
    job = arc.submit(xrsl(executable='"/bin/true"', jobname='"accounting"'), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Finished"
    diag = controldir_diag(grid_site, job)
    nodes = [line.split("=", 1)[1] for line in diag if line.lower().startswith("nodename=")]
    assert nodes == [grid_site.plan.with_role("worker").name]


def test_the_accounting_has_the_cpu_time_and_peak_memory_the_site_measured(grid_site, arc, tmp_path):
    """A job that computes for 2 s and fills a 96 MiB buffer, then claims to have used almost
    nothing: the .diag's last UserTime, KernelTime and MaxResidentMemory are its cgroup's, read
    when the job could no longer change them, and Processors is what its pod was given."""
    # No "$(": xRSL reads it as a variable of its own.
    burn = ("timeout 2 sh -c 'while :; do :; done'; dd if=/dev/zero of=/dev/null bs=96M count=2 2>/dev/null; "
            "printf 'UserTime=0.01s\\nMaxResidentMemory=1kB\\nProcessors=64\\n' >> $PWD.diag")
    job = arc.submit(xrsl(executable='"/bin/sh"', arguments=f'"-c" "{burn}"', count="2", memory="256",
                          jobname='"usage"'), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Finished"
    diag = controldir_diag(grid_site, job)
    cpu = sum(float(last_value(diag, key).removesuffix("s")) for key in ("UserTime", "KernelTime"))
    assert 1.0 <= cpu <= 10.0, "\n".join(diag)
    assert 96 * 1024 <= int(last_value(diag, "MaxResidentMemory").removesuffix("kB")) <= 512 * 1024, "\n".join(diag)
    assert last_value(diag, "Processors") == "2", "\n".join(diag)
    assert not {"UserTime=0.01s", "MaxResidentMemory=1kB", "Processors=64"} & set(diag)  # the job's claims went


def glue2(document: str, kind: str) -> list[dict[str, str]]:
    """The GLUE2 entities of a kind, each as its simple fields (namespaces dropped)."""
    entities = [e for e in ElementTree.fromstring(document).iter() if e.tag.rsplit("}", 1)[-1] == kind]
    return [{f.tag.rsplit("}", 1)[-1]: (f.text or "").strip() for f in e} for e in entities]


def test_the_ce_publishes_its_queues_nodes_and_what_the_vo_may_still_use(grid_site, arc):
    """What A-REX publishes from arkd: an execution environment per queue built from its node's
    object (platform, logical CPUs, memory, OS family, how many nodes), and `arcinfo -l` shows
    each share's free slots: the node's free CPUs, within the VO's quota."""
    node = json.loads(grid_site.with_role("control-plane").run(
        "kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig", "get", "nodes", "-o", "json", check=True).stdout)["items"][0]
    status = node["status"]
    environments = glue2(arc.published(), "ExecutionEnvironment")
    assert len(environments) == 2, environments  # the queues default and roomy, on the one worker
    for environment in environments:
        assert environment["Platform"] == "amd64" and environment["OSFamily"] == "linux", environment
        assert environment["MainMemorySize"] == str(memory_mb(status["allocatable"]["memory"])), environment
        assert environment["LogicalCPUs"] == status["capacity"]["cpu"], environment
        assert environment["TotalInstances"] == "1", environment
    free = int(cpu_count(status["allocatable"]["cpu"]))  # VO alpha's quota (16) is larger
    shares = re.findall(r"^\s*Free slots: (\d+)$", arc.info(long=True), re.M)
    assert shares == [str(free)] * 2, shares
