"""The test host itself: a Debian 12 with systemd as PID 1 and sshd, reached as a site admin
reaches a machine (SSH, with the host key checked), and looked into with testinfra.

These tests prove the harness the site tests stand on, so a failure here means the harness (not
a formula) is broken. Each boot prints its timings.
"""

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from localsite.host import admin_ssh_key, running_host

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: boots a systemd-nspawn host"),
]

# Indexes pick the hosts' network namespaces and addresses; the two must not overlap.
HOST_INDEX = 11
THROWAWAY_HOST_INDEX = 12


@pytest.fixture(scope="module")
def test_host(tmp_path_factory):
    started = time.monotonic()
    with running_host("ark-test", tmp_path_factory.mktemp("host"), index=HOST_INDEX) as host:
        print(f"boot {time.monotonic() - started:.1f} s")
        yield host


def test_systemd_is_pid_1_and_running(test_host):
    assert test_host.run("ps", "-o", "comm=", "-p", "1").stdout.strip() == "systemd"
    assert test_host.run("systemctl", "is-system-running").stdout.strip() in ("running", "degraded")
    assert test_host.run("hostname").stdout.strip() == "ark-test"
    assert f"inet {test_host.address}/30" in test_host.run("ip", "-4", "addr", "show", "eth0").stdout


def test_root_logs_in_over_ssh_with_the_admins_key_and_a_host_key_of_its_own(test_host, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{test_host.address} {test_host.ssh_host_key}\n")
    login = subprocess.run(
        ["ssh", "-i", str(admin_ssh_key()), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         f"root@{test_host.address}", "hostname"],
        capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "ark-test"


def test_testinfra_reaches_into_the_host(test_host):
    infra = test_host.testinfra()
    assert infra.service("systemd-journald").is_running
    assert infra.service("ssh").is_running
    assert infra.socket("unix:///run/systemd/journal/stdout").is_listening
    assert infra.check_output("hostname") == "ark-test"


def _pid_namespace_members(pid_namespace: str) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # not a process, or one that just exited
            if os.readlink(entry / "ns/pid") == pid_namespace:
                members.add(int(entry.name))
    return members


def test_shutdown_leaves_nothing_behind(tmp_path):
    started = time.monotonic()
    with running_host("ark-throwaway", tmp_path, index=THROWAWAY_HOST_INDEX) as host:
        print(f"boot {time.monotonic() - started:.1f} s")
        # A daemon that no service owns, as a careless state might leave.
        host.run("sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &", check=True)
        pid_namespace = os.readlink(f"/proc/{host.init_pid}/ns/pid")
        assert len(_pid_namespace_members(pid_namespace)) > 3
        nspawn_pid, netns, cgroup_dirs = host.nspawn.pid, host.netns, host.cgroup_dirs()
        assert all(path.is_dir() for path in cgroup_dirs)
    assert not _pid_namespace_members(pid_namespace)
    assert not Path(f"/proc/{nspawn_pid}").exists()
    assert not netns.exists()
    assert not Path("/sys/class/net", netns.host_if).exists()
    assert not any(path.exists() for path in cgroup_dirs)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    assert not host.root.exists()
