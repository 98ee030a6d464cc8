"""ARK sites on systemd test hosts, installed the way a site admin installs one: `ark init` and
`ark deploy` over SSH.

A site is a plan: which hosts, with which roles, on one LAN (localsite.netns.Lan) with no route
out, as a site with no internet. ALL_IN_ONE is one host with every role; SPLIT gives each role
hosts of its own (control plane, registry, CE, two workers with pod ranges of their own), and
gives the CE and the workers one session directory, as a shared file system would.

What a site has around it, this module provides on the machine's side of the LAN (10.213.L.1),
and stops by PID afterwards:
- the site's bundle (`ark bundle`: Kubernetes binaries, wheels, images, a signed Debian
  repository) served by python's http.server as its files repository, the hosts' only source of
  packages;
- the site's inventory (the example site's pillar/site.sls with this site's settings over it, and
  its hosts), from which `ark init` writes the pillar and the site CA.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from ark.bundle import served_at
from ark.deploy import DeployResult, deploy
from ark.inventory import load_inventory, merge

from .arcclient import ArcClient, GridIdentity
from .host import Host, admin_ssh_key, kubelet_sysctls, running_host
from .images import LAYOUT_TAG, vo_image_layout
from .netns import Lan
from .processes import stop

REPO = Path(__file__).resolve().parents[1]
SALT_DIR = REPO / "salt"
# The machine's bundle of this checkout (`ark bundle`; a second run takes about a second), which
# each site gets a hard-linked copy of as its files repository, its only source of packages.
BUNDLE = Path("/var/cache/ark/site-bundle")
FILES_PORT = 8021
# Salt wraps apt-get in `systemd-run --scope`, which fails in a test host: its cgroup namespace is
# rooted above the cgroup bound over its /sys/fs/cgroup, so systemd cannot find the caller's unit
# ("Unknown object '/org/freedesktop/systemd1/unit/self'"). Real hosts need no such setting.
TEST_HOST_MINION = {"systemd.scope": False}
ROLES = ("control-plane", "worker", "registry", "ce")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HostPlan:
    name: str  # hostname, minion id and Kubernetes node name
    number: int  # netns ark-host-NUMBER, address 10.213.LAN.NUMBER
    roles: tuple[str, ...]
    pod_cidr: str | None = None  # a worker's own pod range (default: the example site's)
    # Binds the machine's one session directory into the host: stands in for a file system the
    # admin mounts on the CE and every worker herself (session_volume hostPath).
    shares_sessiondir: bool = False


@dataclass(frozen=True)
class SitePlan:
    name: str
    lan: Lan
    hosts: tuple[HostPlan, ...]  # highstate runs in this order: the API server before its clients
    # The shared session directory as a file system of this size (tmpfs `size=`), one a bench can
    # fill; None: a directory of the machine's file system.
    sessiondir_size: str | None = None
    # The host running salt-master (inventory site.salt_master); None: every host masterless.
    salt_master: str | None = None

    def address(self, host: str) -> str:
        return self.lan.address(self.host(host).number)

    def host(self, name: str) -> HostPlan:
        (plan,) = [h for h in self.hosts if h.name == name]
        return plan

    def with_role(self, role: str) -> HostPlan:
        """The site's (first) host with this role."""
        return next(h for h in self.hosts if role in h.roles)

    @property
    def arex_endpoint(self) -> str:
        return f"https://{self.with_role('ce').name}:8443/arex"


# A-REX's session directory (pillar ark:arex:sessiondir), which pods mount from their node.
SESSIONDIR = "/var/spool/arc/sessiondir"

ALL_IN_ONE = SitePlan("all-in-one", Lan(21), (HostPlan("ark-aio", 2, ROLES),))
SPLIT = SitePlan("split", Lan(30), (
    HostPlan("ark-cp", 31, ("control-plane",)),
    HostPlan("ark-registry", 35, ("registry",)),
    HostPlan("ark-ce", 32, ("ce",)),
    HostPlan("ark-wn1", 33, ("worker",), pod_cidr="10.214.1.0/24"),
    HostPlan("ark-wn2", 34, ("worker",), pod_cidr="10.214.2.0/24"),
))
# The split site again, with a Salt master on the control-plane host orchestrating the highstates.
SPLIT_MASTER = replace(SPLIT, name="split-master", lan=Lan(25), salt_master="ark-cp")
SITES = {plan.name: plan for plan in (ALL_IN_ONE, SPLIT, SPLIT_MASTER)}


def example_pillar() -> dict[str, Any]:
    return yaml.safe_load((REPO / "pillar" / "site.sls").read_text())["ark"]


@dataclass
class SaltSite:
    plan: SitePlan
    hosts: dict[str, Host]
    workdir: Path
    # What the site's admin holds: the inventory, the pillar `ark init` wrote from it, the SSH key
    # root logs in to the hosts with, and the host keys `ark deploy` checks.
    inventory: Path
    pillar: Path
    ssh_key: Path
    known_hosts: Path
    boot: Callable[[HostPlan], Host]  # another machine on the site's LAN, up until the site goes
    deployed: DeployResult = field(default_factory=DeployResult)  # the latest `ark deploy`
    timings: dict[str, float] = field(default_factory=dict)

    def with_role(self, role: str) -> Host:
        return self.hosts[self.plan.with_role(role).name]

    @property
    def first(self) -> dict[str, tuple[int, Any]]:
        """Per host, (returncode, result) of the latest deploy's first highstate."""
        return self.deployed.first

    @property
    def second(self) -> dict[str, tuple[int, Any]]:
        """... and of its re-apply, which must change nothing."""
        return self.deployed.second

    def init(self, progress: Progress = print) -> None:
        """`ark init`: the pillar from the inventory, checked by Salt's render of every host."""
        t0 = time.monotonic()
        self.ark("init", str(self.inventory), "--out", str(self.pillar), progress=progress)
        self.timings["ark_init"] = time.monotonic() - t0

    def deploy(self, progress: Progress = print) -> DeployResult:
        """`ark deploy` over SSH, as the admin runs it (through its API, for the results)."""
        t0 = time.monotonic()
        self.deployed = deploy(load_inventory(self.inventory, SALT_DIR), self.pillar, SALT_DIR,
                               ssh_key=self.ssh_key, known_hosts=self.known_hosts, progress=progress,
                               minion_options=TEST_HOST_MINION)
        self.timings["ark_deploy"] = time.monotonic() - t0
        for run, results in (("first", self.first), ("second", self.second)):
            for name, result in results.items():
                (self.workdir / f"{run}-{name}.json").write_text(json.dumps(result, indent=1))
        return self.deployed

    def add_worker(self, spec: HostPlan, progress: Progress = print) -> DeployResult:
        """A new worker, the way its admin adds one: a machine, an entry in the inventory, then
        `ark init` and `ark deploy` of the whole site."""
        self.hosts[spec.name] = self.boot(spec)
        self.plan = replace(self.plan, hosts=(*self.plan.hosts, spec))
        inventory = yaml.safe_load(self.inventory.read_text())
        inventory["hosts"][spec.name] = host_entry(self.plan, spec, self.hosts[spec.name])
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))
        self.init(progress)
        return self.deploy(progress)

    def ark(self, *args: str, progress: Progress = print) -> None:
        """The admin's `ark` command; its output goes to `progress`, a failure raises."""
        result = subprocess.run([sys.executable, "-m", "ark", *args], cwd=REPO, capture_output=True, text=True)
        for line in (result.stdout + result.stderr).splitlines():
            progress(f"   {line}")
        if result.returncode != 0:
            raise RuntimeError(f"ark {args[0]} failed (exit {result.returncode}): {result.stderr.strip()}")


def site_bundle(progress: Progress = print) -> Path:
    """`ark bundle` of this checkout into BUNDLE, as a site admin builds one."""
    command = [sys.executable, "-m", "ark", "bundle", "--out", str(BUNDLE)]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        assert run.stdout
        output = [line.rstrip("\n") for line in run.stdout]
    for line in output:
        if line.startswith("==>"):
            progress(f"   {line}")
    if run.returncode != 0:
        raise RuntimeError(f"ark bundle failed (exit {run.returncode}):\n" + "\n".join(output[-20:]))
    return BUNDLE


def copy_bundle(directory: Path, progress: Progress = print) -> Path:
    """This site's own copy of the bundle (hard links): a later rebuild does not change it. Taken
    under the bundle's own lock, so a concurrent `ark bundle` cannot be halfway through it."""
    bundle = site_bundle(progress)
    with (bundle / ".ark-bundle.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["cp", "-al", str(bundle), str(directory)], check=True)
    return directory


def _wait_for_port(address: str, port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {address}:{port} after {timeout} s")


@contextlib.contextmanager
def served(argv: list[str], address: str, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A server process of ours listening on address:port; stopped by its PID on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(address, port, process)
        yield process
    finally:
        stop(process)


def site_inventory(plan: SitePlan, hosts: dict[str, Host], directory: Path, bundle: Path,
                   extra: dict[str, Any] | None = None) -> Path:
    """The site's inventory, as its admin would write it for `ark init`: the example site's pillar
    (pillar/site.sls), this site's settings over it (the bundle as its files repository and only
    package source, a nested kubelet's settings, the CE's name, then `extra`, in the terms of
    pillar `ark`), and each host with its address, roles and SSH host key."""
    machine = plan.lan.host_ip
    ce = plan.with_role("ce").name
    files_repo = f"http://{machine}:{FILES_PORT}"
    made_for_bundle = served_at(yaml.safe_load((bundle / "pillar.yaml").read_text())["ark"], files_repo)
    settings: dict[str, Any] = merge(made_for_bundle, {
        "kubernetes": {
            # A nested kubelet on a shared machine: report status every second, and do not let
            # the machine's disk or memory use (not this site's) evict or taint anything.
            "kubelet_config": {
                "nodeStatusUpdateFrequency": "1s",
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            },
        },
        "arex": {"hostname": ce, "listen": plan.address(ce), "infoprovider_period": 10},
    })
    inventory = {
        "site": {"pillar": str(REPO / "pillar" / "site.sls"), "settings": merge(settings, extra or {}),
                 **({"salt_master": plan.salt_master} if plan.salt_master else {})},
        "hosts": {spec.name: host_entry(plan, spec, hosts[spec.name]) for spec in plan.hosts},
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def host_entry(plan: SitePlan, spec: HostPlan, host: Host) -> dict[str, Any]:
    """A host in the inventory: its address, roles, the SSH host key its admin noted, its pod range."""
    return {"address": plan.address(spec.name), "roles": list(spec.roles), "ssh_host_key": host.ssh_host_key,
            **({"pod_cidr": spec.pod_cidr} if spec.pod_cidr else {})}


@contextlib.contextmanager
def running_lan(lan: Lan) -> Iterator[Lan]:
    lan.create()
    try:
        yield lan
    finally:
        lan.delete()


@contextlib.contextmanager
def running_salt_site(plan: SitePlan, workdir: Path, progress: Progress = print,
                      pillar: dict[str, Any] | None = None) -> Iterator[SaltSite]:
    """Boot the plan's hosts and install the site on them as its admin would: `ark init` writes
    the pillar from the site's inventory, `ark deploy` installs Salt over SSH and highstates every
    host twice in role order. The hosts and the site's mirrors run until the block ends. `pillar`
    (in the terms of pillar `ark`) is merged over the example site's."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    repo = copy_bundle(workdir / "files", progress)
    timings["bundle"] = time.monotonic() - started
    # One directory of the machine's as the session directory of the CE and the workers, as a
    # shared file system would be.
    sessiondir = workdir / "sessiondir"
    sessiondir.mkdir()
    machine = plan.lan.host_ip
    admin = workdir / "admin"
    with contextlib.ExitStack() as stack:
        if plan.sessiondir_size:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={plan.sessiondir_size},mode=0755",
                            "ark-sessiondir", str(sessiondir)], check=True)
            # Lazy: the file system goes once the last host's mount namespace lets it go.
            stack.callback(subprocess.run, ["umount", "--lazy", str(sessiondir)], check=True)
        # The hosts' /proc/sys is read-only: the machine takes the kernel settings kubelet needs.
        stack.enter_context(kubelet_sysctls())
        stack.enter_context(running_lan(plan.lan))

        def boot(spec: HostPlan) -> Host:
            binds = [f"{sessiondir}:{SESSIONDIR}"] if spec.shares_sessiondir else []
            return stack.enter_context(running_host(
                spec.name, workdir / spec.name, index=spec.number, lan=plan.lan, binds=binds, progress=progress))

        hosts = {spec.name: boot(spec) for spec in plan.hosts}
        timings["hosts_up"] = time.monotonic() - started
        files = [sys.executable, "-m", "http.server", "--bind", machine, "--directory", str(repo), str(FILES_PORT)]
        stack.enter_context(served(files, machine, FILES_PORT, workdir / "files.log"))
        inventory = site_inventory(plan, hosts, admin, repo, pillar)
        site = SaltSite(plan, hosts, workdir, inventory, admin / "pillar", admin_ssh_key(), admin / "known_hosts",
                        boot, timings=timings)
        site.init(progress)
        site.deploy(progress)
        timings["setup"] = time.monotonic() - started
        progress(f"==> site timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield site


class SiteAdmin(Protocol):
    """What the admin of a deployed site holds (a SaltSite, a Vagrant site): its plan, a work
    directory with the bundle in files/, and the pillar `ark init` wrote (with the site CA)."""

    plan: SitePlan
    workdir: Path

    @property
    def pillar(self) -> Path: ...


def push_image(site: SiteAdmin, source: str, repository: str, account: dict[str, str], workdir: Path) -> None:
    """Push an image (a skopeo source, e.g. oci-archive:FILE) over TLS (site CA) with a registry
    account (pillar {name, password})."""
    certs = workdir / "registry-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(site_ca(site), certs / "ca.crt")
    registry = site.plan.address(site.plan.with_role("registry").name)
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"--dest-cert-dir={certs}", f"--dest-creds={account['name']}:{account['password']}",
         source, f"docker://{registry}:5000/{repository}"],
        check=True, capture_output=True, text=True,
    )


# What noshell:1 lacks of the VO base image (merged /usr, so /bin/sh goes too): a VO image
# without a shell, as distroless images are.
NO_SHELL = ("/usr/bin/sh", "/usr/bin/dash", "/usr/bin/bash")


def push_site_images(site: SiteAdmin, workdir: Path, progress: Progress = print) -> None:
    """After the deploy: the site admin pushes the bundle's pod sandbox image, VO alpha's manager
    its images, built on the bundle's VO base image (each with /etc/ark-image naming it), one of
    them without a shell."""
    accounts = example_pillar()["registry"]
    images = site.workdir / "files" / "images"
    progress("==> pushing ark/pause:3.2 (site admin account), vo-alpha/base:1, vo-alpha/tools:2 and "
             "vo-alpha/noshell:1 (VO alpha's push account) into the site registry over TLS")
    push_image(site, f"oci-archive:{images / 'ark-pause-3.2.oci.tar'}", "ark/pause:3.2", accounts["admin_user"],
               workdir)
    for tag, removed in (("base:1", ()), ("tools:2", ()), ("noshell:1", NO_SHELL)):
        layout = vo_image_layout(images / "vo-base.oci.tar", tag, removed)
        push_image(site, f"oci:{layout}:{LAYOUT_TAG}", f"vo-alpha/{tag}", accounts["push_users"]["alpha"], workdir)


def site_ca(site: SiteAdmin) -> Path:
    """The site CA's certificate, which ark init keeps beside the pillar with its key (ca.key)."""
    return site.pillar / "ca" / "ca.crt"


def grid_client(site: SiteAdmin, workdir: Path, dn: str | None = None) -> ArcClient:
    """The ARC client for a grid user (default: VO alpha's first member, pillar ark:vos:alpha:dns)
    with a certificate from the site CA, seeing the CE by its name."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    ca_dir = workdir / "certificates"
    ca_dir.mkdir()
    ca_cert = site_ca(site)
    ca_key = ca_cert.with_name("ca.key")
    shutil.copy(ca_cert, ca_dir / "ark-site-ca.pem")
    subprocess.run(["openssl", "rehash", str(ca_dir)], check=True)
    key, csr, cert, ext = (workdir / name for name in ("userkey.pem", "user.csr", "usercert.pem", "ext.cnf"))
    ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=clientAuth\n")
    subject = dn or example_pillar()["vos"]["alpha"]["dns"][0]
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", subject], check=True, capture_output=True)
    key.chmod(0o400)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-CAserial", str(workdir / "ca.srl"), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
                    "-out", str(cert)],
                   check=True, capture_output=True)
    ce = site.plan.with_role("ce").name
    return ArcClient.create(workdir / "client", site.plan.arex_endpoint, GridIdentity(cert, key, ca_dir),
                            {ce: site.plan.address(ce)})


def hello_grid_job(site: SiteAdmin, workdir: Path, name: str, timeout: float = 300) -> tuple[str, str, float]:
    """A grid user's first job through the site: `echo hello NAME; id -u` from the ARC client
    outside it, waited for and its stdout brought back with arcget. Returns the job's final state,
    that stdout ("" unless Finished) and the seconds from arcsub to the final state."""
    workdir.chmod(0o755)
    client = grid_client(site, workdir / "client")
    started = time.monotonic()
    job = client.submit(f'&(executable="/bin/sh")(arguments="-c" "echo hello {name}; id -u")'
                        f'(stdout="stdout.txt")(jobname="{name}")', cwd=workdir)
    state = client.wait(job, timeout=timeout)
    seconds = time.monotonic() - started
    if state != "Finished":
        return state, "", seconds
    return state, (client.get(job, workdir / "results") / "stdout.txt").read_text(), seconds
