"""The test host itself: a Debian 12 with systemd as PID 1, Salt inside, testinfra reaching in.

These tests prove the harness the Salt state tests stand on, with a state tree of their own,
so a failure here means the harness (not a formula) is broken. Each boot prints its timings.
"""

import contextlib
import os
import time
from pathlib import Path

import pytest

from localsite.host import (
    SALT_VERSION,
    changed_states,
    highstate,
    install_salt,
    running_host,
    salt_call,
)

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
        booted = time.monotonic()
        install_salt(host)
        print(f"boot {booted - started:.1f} s, salt install {time.monotonic() - booted:.1f} s")
        yield host


def test_systemd_is_pid_1_and_running(test_host):
    assert test_host.run("ps", "-o", "comm=", "-p", "1").stdout.strip() == "systemd"
    assert test_host.run("systemctl", "is-system-running").stdout.strip() in ("running", "degraded")
    assert test_host.run("hostname").stdout.strip() == "ark-test"
    assert f"inet {test_host.address}/30" in test_host.run("ip", "-4", "addr", "show", "eth0").stdout


def test_salt_is_the_pinned_version(test_host):
    result = salt_call(test_host, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["salt-call", SALT_VERSION]


def _write_tree(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def test_highstate_applies_then_changes_nothing(test_host, tmp_path):
    salt_dir = _write_tree(tmp_path / "salt", {
        "top.sls": "base:\n  '*':\n    - marker\n",
        "marker.sls": (
            "marker file holds the pillar value:\n"
            "  file.managed:\n"
            "    - name: /etc/ark-test/marker\n"
            "    - makedirs: true\n"
            "    - mode: '0600'\n"
            "    - contents: {{ pillar['marker'] | yaml_dquote }}\n"
        ),
    })
    pillar_dir = _write_tree(tmp_path / "pillar", {
        "top.sls": "base:\n  '*':\n    - marker\n",
        "marker.sls": "marker: from-pillar\n",
    })

    returncode, result = highstate(test_host, pillar_dir, salt_dir=salt_dir)
    assert returncode == 0, result
    assert len(changed_states(result)) == 1
    assert (test_host.root / "etc/ark-test/marker").read_text().strip() == "from-pillar"

    returncode, result = highstate(test_host, pillar_dir, salt_dir=salt_dir)
    assert returncode == 0, result
    assert changed_states(result) == []


def test_render_error_fails_the_highstate(test_host, tmp_path):
    salt_dir = _write_tree(tmp_path / "salt", {
        "top.sls": "base:\n  '*':\n    - broken\n",
        "broken.sls": "{{ raise('pillar ark:example: deliberately bad') }}\n",
    })
    pillar_dir = _write_tree(tmp_path / "pillar", {"top.sls": "base: {}\n"})

    returncode, result = highstate(test_host, pillar_dir, salt_dir=salt_dir)
    assert returncode != 0
    assert isinstance(result, list) and "pillar ark:example: deliberately bad" in "".join(result)


def test_testinfra_reaches_into_the_host(test_host):
    infra = test_host.testinfra()
    assert infra.service("systemd-journald").is_running
    assert infra.socket("unix:///run/systemd/journal/stdout").is_listening
    assert infra.file("/etc/salt/minion").contains("file_client")
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
