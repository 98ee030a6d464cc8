"""The Vagrant test site (vagrant/) as an admin brings it up, for the tests: `vagrant` itself with
the docker provider, podman standing in for docker (podman-docker's `docker` ahead of any other on
PATH), Vagrant's and ARK's state in a directory of the test's own, and this checkout's bundle.

What the site leaves on the machine beyond Vagrant's own objects is put back when it goes: the
kernel settings the nested kubelet changes (they are the machine's: a container shares its kernel)
and the iptables chains and rules podman's CNI plugins add to the machine's tables and keep.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ark.vagrant import VAGRANT_DIR, Settings, load_settings

from .host import kubelet_sysctls
from .netns import Lan
from .saltsite import HostPlan, SitePlan, copy_bundle

# podman-docker's shim; /usr/local/bin may hold another docker client, which comes first on PATH.
PODMAN_DOCKER = Path("/usr/bin/docker")
FIREWALL_TABLES = ("filter", "nat")
UP_TIMEOUT = 1200  # seconds: the machine image (debootstrap, once) and the first deploy
Progress = Callable[[str], None]


@dataclass
class VagrantSite:
    """A Vagrant site that is up: what its admin holds (SiteAdmin of localsite.saltsite)."""

    plan: SitePlan
    workdir: Path  # the bundle in files/, Vagrant's state in .vagrant/
    settings: Settings
    env: dict[str, str] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.workdir / ".vagrant" / "ark"

    @property
    def pillar(self) -> Path:
        return self.state / "pillar"

    def vagrant(self, *args: str, timeout: float = UP_TIMEOUT, progress: Progress = print) -> str:
        """`vagrant ARGS` in vagrant/, its output to `progress` as it comes; returns it, or raises."""
        return vagrant(args, self.env, timeout=timeout, progress=progress)


def vagrant_env(workdir: Path, site: str, bundle: Path) -> dict[str, str]:
    """The environment an admin would run `vagrant` in, with its state in `workdir`."""
    shim = workdir / "bin"
    shim.mkdir(exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (shim / "docker").symlink_to(PODMAN_DOCKER)
    return {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "ARK_SITE": site, "ARK_BUNDLE": str(bundle),
            "VAGRANT_DOTFILE_PATH": str(workdir / ".vagrant"), "VAGRANT_HOME": str(workdir / "vagrant.d"),
            "VAGRANT_DEFAULT_PROVIDER": "docker", "VAGRANT_CHECKPOINT_DISABLE": "1"}


def vagrant(args: tuple[str, ...], env: dict[str, str], *, timeout: float, progress: Progress) -> str:
    """`vagrant ARGS`, its output to `progress` as it comes; returns it, or raises. On a timeout
    its whole process group goes (ark deploy and ssh under it too)."""
    lines: list[str] = []
    with subprocess.Popen(["vagrant", *args], cwd=VAGRANT_DIR, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True) as run:

        def read() -> None:
            assert run.stdout
            for line in run.stdout:
                lines.append(line.rstrip("\n"))
                progress(f"   {lines[-1]}")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            run.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(30)
            raise RuntimeError(f"vagrant {args[0]} took more than {timeout} s") from None
        finally:
            reader.join(30)
    if run.returncode != 0:
        raise RuntimeError(f"vagrant {' '.join(args)} failed (exit {run.returncode}):\n" + "\n".join(lines[-30:]))
    return "\n".join(lines)


def site_plan(settings: Settings) -> SitePlan:
    """The site's machines as localsite plans a site, from its inventory (vagrant/sites/SITE.yaml)."""
    lan = Lan(int(str(settings.subnet.network_address).split(".")[2]))
    hosts = yaml.safe_load(settings.site_file.read_text())["hosts"]
    plan = SitePlan(f"vagrant-{settings.site}", lan, tuple(
        HostPlan(name, int(host["address"].rsplit(".", 1)[1]), tuple(host["roles"]), host.get("pod_cidr"))
        for name, host in hosts.items()))
    for name, host in hosts.items():
        assert plan.address(name) == host["address"], f"{name}: {host['address']} is not on {settings.subnet}"
    return plan


@contextlib.contextmanager
def running_vagrant_site(site: str, workdir: Path, progress: Progress = print) -> Iterator[VagrantSite]:
    """`vagrant up --provider=docker` of `site`, `vagrant destroy -f` at the end (also after a failure)."""
    bundle = copy_bundle(workdir / "files", progress)
    env = vagrant_env(workdir, site, bundle)
    settings = load_settings(environ=env)
    made_image = subprocess.run(["docker", "image", "inspect", settings.image], env=env,
                                capture_output=True).returncode != 0
    vagrant_site = VagrantSite(site_plan(settings), workdir, settings, env)
    with contextlib.ExitStack() as stack:
        stack.enter_context(kubelet_sysctls())
        stack.enter_context(firewall_restored())
        if made_image:
            stack.callback(subprocess.run, ["docker", "rmi", settings.image], env=env, capture_output=True)
        stack.callback(vagrant, ("destroy", "--force"), env, timeout=300, progress=progress)
        started = time.monotonic()
        vagrant_site.vagrant("up", "--provider=docker", progress=progress)
        vagrant_site.timings["vagrant_up"] = time.monotonic() - started
        yield vagrant_site


def _firewall(table: str) -> tuple[set[str], list[str]]:
    """The user chains of an iptables table, and its rules in `iptables -S` form."""
    lines = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return ({line.split()[1] for line in lines if line.startswith("-N ")},
            [line for line in lines if line.startswith("-A ")])


@contextlib.contextmanager
def firewall_restored() -> Iterator[None]:
    """The chains podman's CNI plugins add to the machine's FIREWALL_TABLES (CNI-*) and keep after
    their last network is gone, removed again with the rules that jump to them, unless they
    were there before the block."""
    before = {table: _firewall(table) for table in FIREWALL_TABLES}
    try:
        yield
    finally:
        for table, (chains, _) in before.items():
            _remove_cni_chains(table, keep=chains)


def _remove_cni_chains(table: str, keep: set[str]) -> None:
    now_chains, now_rules = _firewall(table)
    added = {chain for chain in now_chains - keep if chain.startswith("CNI-")}
    for rule in reversed(now_rules):
        words = shlex.split(rule)
        jumps_to = words[words.index("-j") + 1] if "-j" in words else None
        if words[1] not in added and jumps_to in added:
            subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]], check=True)
    for action in ("-F", "-X"):
        for chain in added:
            subprocess.run(["iptables", "-w", "-t", table, action, chain], check=True)
