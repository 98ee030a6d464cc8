"""Grid jobs from the ARC client, through A-REX and arkd, as pods on Kubernetes, and back."""

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.arex]


def xrsl(**attrs: str) -> str:
    return "&" + "".join(f'({k}={v})' for k, v in attrs.items())


def test_a_job_with_an_input_file_returns_its_output_with_arcget(arc, tmp_path):
    (tmp_path / "in.txt").write_text("hello grid\n")
    job = arc.submit(xrsl(executable='"/bin/sh"', arguments='"-c" "tr a-z A-Z < in.txt > out.txt; id -u"',
                          inputfiles='("in.txt" "")', outputfiles='("out.txt" "")', stdout='"stdout.txt"',
                          jobname='"io"'), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Finished"
    results = arc.get(job, tmp_path / "results")
    assert (results / "out.txt").read_text() == "HELLO GRID\n"
    assert (results / "stdout.txt").read_text().strip() == "20001"


def test_a_job_exiting_3_fails_with_code_3(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sh"', arguments='"-c" "exit 3"', jobname='"exit3"'), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Failed"
    assert arc.details(job)["Exit Code"] == "3"


def test_a_walltime_overrun_fails_with_a_clear_message(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sleep"', arguments='"600"', walltime='"PT10S"', jobname='"overrun"'),
                     cwd=tmp_path)
    assert arc.wait(job, timeout=300) == "Failed"
    assert arc.details(job)["Job Error"] == "LRMS error: (271) job exceeded its wall time limit of 10 s and was stopped"


def test_arckill_ends_a_running_job_as_killed(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/sleep"', arguments='"600"', jobname='"victim"'), cwd=tmp_path)
    arc.wait(job, states={"Running"}, timeout=240)
    arc.kill(job)
    assert arc.wait(job, timeout=240) == "Killed"


def test_an_image_outside_the_vo_allowlist_is_refused_at_submit(arc, tmp_path):
    job = arc.submit(xrsl(executable='"/bin/true"', runtimeenvironment='"ENV/CONTAINER" "evil/root:1"',
                          jobname='"evil"'), cwd=tmp_path)
    assert arc.wait(job, timeout=240) == "Failed"
    assert arc.details(job)["Job Error"] == "Job submission to LRMS failed"
    log = arc.run("arccat", "-z", str(arc.conffile), "-j", str(arc.joblist), "-l", job)
    assert "ERROR: image 'evil/root:1' is not allowed for VO alpha (allowed: base:1, missing:1)" in log
