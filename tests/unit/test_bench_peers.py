"""bench/peers' own logic: the peers' arc.conf, Slurm's configuration, and the control directory
watch that times every job (a real inotify watch on a temporary directory)."""

import os
import time

import pytest

from bench.controlwatch import ControlDirWatch
from bench.peers import peer_arc_conf, queues
from bench.slurm import node_line, slurm_conf

ARC_CONF = """[common]
hostname = ce.example.org

[lrms]
lrms = kubernetes

[arex]
controldir = /var/spool/arc/jobstatus
wakeupperiod = 180

[queue:default]
allowaccess = alpha

[queue:roomy]
allowaccess = alpha

[custom:kubernetes]
socket = /run/ark/arkd.sock
"""


def test_a_peer_configuration_changes_only_the_lrms_block():
    fork = peer_arc_conf(ARC_CONF, "fork")
    assert fork == ARC_CONF.replace("lrms = kubernetes\n", "lrms = fork\n")


def test_slurm_gets_its_options_and_a_queue_named_default_is_renamed_for_its_partition():
    slurm = peer_arc_conf(ARC_CONF, "slurm")
    assert "[lrms]\nlrms = slurm\nslurm_bin_path = /usr/bin\nslurm_use_sacct = no\n\n[arex]" in slurm
    assert queues(slurm) == ["batch", "roomy"]
    assert "wakeupperiod = 180" in slurm and "[custom:kubernetes]" in slurm


def test_an_arc_conf_without_an_lrms_block_is_refused():
    with pytest.raises(ValueError, match="no \\[lrms\\] block"):
        peer_arc_conf("[arex]\ncontroldir = /x\n", "fork")


def test_slurm_runs_every_partition_on_the_node_slurmd_found():
    line = node_line("NodeName=ark-peers CPUs=2 Boards=1 SocketsPerBoard=2 RealMemory=24000\nUpTime=0-01:00:00\n")
    assert line == "NodeName=ark-peers CPUs=2 Boards=1 SocketsPerBoard=2 RealMemory=24000"
    conf = slurm_conf(line, "10.213.23.4", ["batch", "roomy"]).splitlines()
    assert "SlurmctldHost=ark-peers(10.213.23.4)" in conf
    assert f"{line} NodeAddr=10.213.23.4 State=UNKNOWN" in conf
    assert "PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP" in conf
    assert "PartitionName=roomy Nodes=ALL Default=NO MaxTime=INFINITE State=UP" in conf


def test_slurmd_without_a_node_line_is_an_error():
    with pytest.raises(RuntimeError, match="no NodeName line"):
        node_line("slurmd: fatal: something\n")


def test_the_watch_refuses_arc7s_layout_it_cannot_see_into(tmp_path):
    (tmp_path / "jobs").mkdir()
    with pytest.raises(ValueError, match="ARC 7"):
        ControlDirWatch(tmp_path)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the watch did not record the write"
        time.sleep(0.01)


def test_the_watch_times_each_state_the_submit_script_and_the_lrms_end(tmp_path):
    watch = ControlDirWatch(tmp_path).start()
    try:
        grid_id = "0a1b2c"
        grami = tmp_path / f"job.{grid_id}.grami"
        before = time.time()
        (tmp_path / "accepting" / f"job.{grid_id}.status").write_text("ACCEPTED")
        grami.write_text("joboption_directory='/s'\n")  # A-REX, just before the submit script
        # The watch times a batch of events when it reads it: the first close read on its own.
        wait_for(lambda: len(watch.times(grid_id).grami) == 1)
        time.sleep(0.05)
        with grami.open("a") as f:  # the script, at its end
            f.write("joboption_jobid=42\n")
        # A-REX moves a status between directories by renaming a new file into place.
        new = tmp_path / "processing" / "tmp.new"
        new.write_text("INLRMS")
        os.rename(new, tmp_path / "processing" / f"job.{grid_id}.status")
        (tmp_path / f"job.{grid_id}.lrms_done").write_text("0")
        (tmp_path / "finished" / f"job.{grid_id}.status").write_text("FINISHED")
        wait_for(lambda: "FINISHED" in watch.times(grid_id).states)
        times = watch.times(grid_id)
        assert list(times.states) == ["ACCEPTED", "INLRMS", "FINISHED"]
        assert before <= times.states["ACCEPTED"] <= times.states["INLRMS"] <= times.lrms_done <= times.states["FINISHED"]
        assert 0.05 <= times.submit_script_s < 1.0
        assert not watch.overflowed
    finally:
        watch.stop()


def test_a_state_written_twice_keeps_the_first_time(tmp_path):
    watch = ControlDirWatch(tmp_path).start()
    try:
        status = tmp_path / "processing" / "job.x1.status"
        status.write_text("INLRMS")
        wait_for(lambda: "INLRMS" in watch.times("x1").states)
        first = watch.times("x1").states["INLRMS"]
        time.sleep(0.02)
        status.write_text("PENDING:INLRMS")
        status.write_text("FINISHING")
        wait_for(lambda: "FINISHING" in watch.times("x1").states)
        assert watch.times("x1").states["INLRMS"] == first
    finally:
        watch.stop()
