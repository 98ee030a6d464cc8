"""ARK sites on systemd test hosts, installed the way a site admin installs one: `ark init` and
`ark deploy` over SSH.

A site is a plan: which hosts, with which roles, on one LAN (localsite.netns.Lan) with no route
out, as a site with no internet. ALL_IN_ONE is one host with every role; SPLIT gives each role
hosts of its own (control plane, registry, CE, two workers with pod ranges of their own), and
gives the CE and the workers one session directory, as a shared file system would.

What a site has around it, this module provides on the machine's side of the LAN (10.213.L.1),
and stops by PID afterwards:
- a files repository (python's http.server): the Kubernetes binaries built from Debian's source
  (/var/cache/ark/kubernetes-*/bin) under kubernetes/<version>/, Salt's wheels, and the arc_bridge
  wheel with its dependencies' wheels and its .sha256;
- an apt proxy (Debian's apt-cacher-ng), named to the hosts through pillar ark:apt:proxy;
- the site's inventory (the example site's pillar/site.sls with this site's settings over it, and
  its hosts), from which `ark init` writes the pillar and the site CA.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ark.deploy import DeployResult, deploy
from ark.inventory import load_inventory, merge

from .arcclient import ArcClient, GridIdentity
from .host import Host, admin_ssh_key, kubelet_sysctls, running_host
from .images import LAYOUT_TAG, debian_mirror, pause_layout, vo_image_layout
from .netns import Lan
from .processes import stop

REPO = Path(__file__).resolve().parents[1]
SALT_DIR = REPO / "salt"
# What tools/setup-host builds from Debian's source package.
K8S_BIN = Path("/var/cache/ark/kubernetes-1.20.5+really1.20.2/bin")
FILES_PORT = 8021
APT_PROXY_PORT = 3142
K8S_VERSION = "1.20.2"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
WHEEL_CACHE = Path("/var/cache/ark/bridge-wheels")
# Salt wraps apt-get in `systemd-run --scope`, which fails in a test host: its cgroup namespace is
# rooted above the cgroup bound over its /sys/fs/cgroup, so systemd cannot find the caller's unit
# ("Unknown object '/org/freedesktop/systemd1/unit/self'"). Real hosts need no such setting.
TEST_HOST_MINION = {"systemd.scope": False}
# Salt's wheels for Debian's python3, built by tools/setup-host (the version salt/ark/versions.yaml pins).
SALT_WHEELS = Path("/var/cache/ark/salt-wheels")
ACNG_CACHE = Path("/var/cache/ark/apt-cacher-ng")
ROLES = ("control-plane", "worker", "registry", "ce")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HostPlan:
    name: str  # hostname, minion id and Kubernetes node name
    number: int  # netns ark-host-NUMBER, address 10.213.LAN.NUMBER
    roles: tuple[str, ...]
    pod_cidr: str | None = None  # a worker's own pod range (default: the example site's)
    shares_sessiondir: bool = False  # binds the site's one session directory (CE and workers)


@dataclass(frozen=True)
class SitePlan:
    name: str
    lan: Lan
    hosts: tuple[HostPlan, ...]  # highstate runs in this order: the API server before its clients

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
    HostPlan("ark-ce", 32, ("ce",), shares_sessiondir=True),
    HostPlan("ark-wn1", 33, ("worker",), pod_cidr="10.214.1.0/24", shares_sessiondir=True),
    HostPlan("ark-wn2", 34, ("worker",), pod_cidr="10.214.2.0/24", shares_sessiondir=True),
))
SITES = {plan.name: plan for plan in (ALL_IN_ONE, SPLIT)}


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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dependency_wheels() -> Path:
    """Wheels of arc_bridge's dependencies, built once per machine."""
    if not any(WHEEL_CACHE.glob("kubernetes-*.whl")):
        WHEEL_CACHE.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=WHEEL_CACHE.parent, ignore_cleanup_errors=True) as building:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", building, str(REPO)], check=True)
            for wheel in Path(building).glob("arc_bridge-*.whl"):
                wheel.unlink()
            with contextlib.suppress(OSError):  # a concurrent run got there first
                Path(building).rename(WHEEL_CACHE)
    return WHEEL_CACHE


def files_repository(directory: Path) -> tuple[Path, dict[str, str], str]:
    """The site mirror's tree: (root, sha256 per Kubernetes binary, arc_bridge wheel name). The
    arc_bridge wheel of the current tree is built into it, so runs side by side never share one."""
    kube = directory / "kubernetes" / K8S_VERSION
    kube.mkdir(parents=True)
    checksums = {}
    for name in K8S_BINARIES:
        (kube / name).symlink_to(K8S_BIN / name)
        checksums[name] = _sha256(K8S_BIN / name)
    for wheel in dependency_wheels().glob("*.whl"):
        if not wheel.name.startswith("arc_bridge-"):  # left in the cache by earlier versions of this code
            (directory / wheel.name).symlink_to(wheel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(directory), str(REPO)],
                   check=True)
    (bridge,) = [w.name for w in directory.glob("arc_bridge-*.whl")]
    (directory / f"{bridge}.sha256").write_text(f"{_sha256(directory / bridge)}  {bridge}\n")
    return directory, checksums, bridge


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


def apt_cacher_ng(workdir: Path, address: str) -> list[str]:
    """Debian's apt-cacher-ng listening only on `address`, fetching from this machine's mirror."""
    ACNG_CACHE.mkdir(parents=True, exist_ok=True)
    (workdir / "acng-log").mkdir()
    config = workdir / "acng-conf"
    shutil.copytree("/etc/apt-cacher-ng", config)
    # The package leaves the Debian backend empty (its debconf question); without it every
    # request for /debian is answered 503.
    (config / "backends_debian").write_text(debian_mirror().rstrip("/") + "/\n")
    return [
        "/usr/sbin/apt-cacher-ng", "-c", str(config),
        "ForeGround=1", f"BindAddress={address}", f"Port={APT_PROXY_PORT}",
        f"CacheDir={ACNG_CACHE}", f"LogDir={workdir / 'acng-log'}",
        f"SocketPath={workdir / 'acng.socket'}", f"PidFile={workdir / 'acng.pid'}",
    ]


def site_inventory(plan: SitePlan, hosts: dict[str, Host], directory: Path, checksums: dict[str, str],
                   wheel: str, extra: dict[str, Any] | None = None) -> Path:
    """The site's inventory, as its admin would write it for `ark init`: the example site's pillar
    (pillar/site.sls), this site's settings over it (its mirrors, Kubernetes build, the CE's
    name, then `extra`, in the terms of pillar `ark`), and each host with its address, roles and
    SSH host key."""
    machine = plan.lan.host_ip
    ce = plan.with_role("ce").name
    settings: dict[str, Any] = {
        "files_repo": f"http://{machine}:{FILES_PORT}",
        "apt": {"proxy": f"http://{machine}:{APT_PROXY_PORT}"},
        "kubernetes": {
            "checksums": {K8S_VERSION: checksums},
            # A nested kubelet on a shared machine: report status every second, and do not let
            # the machine's disk or memory use (not this site's) evict or taint anything.
            "kubelet_config": {
                "nodeStatusUpdateFrequency": "1s",
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            },
        },
        "arex": {"hostname": ce, "listen": plan.address(ce), "infoprovider_period": 10},
        "bridge": {"wheel": wheel},
    }
    inventory = {
        "site": {"pillar": str(REPO / "pillar" / "site.sls"), "settings": merge(settings, extra or {})},
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
    repo, checksums, wheel = files_repository(workdir / "files")
    salt_wheels = sorted(SALT_WHEELS.glob("*.whl"))
    if not salt_wheels:
        raise RuntimeError(f"no Salt wheels in {SALT_WHEELS}: run tools/setup-host")
    for salt_wheel in salt_wheels:
        if not (repo / salt_wheel.name).exists():  # Salt and arc_bridge share some dependencies
            (repo / salt_wheel.name).symlink_to(salt_wheel)
    # One directory of the machine's as the session directory of the CE and the workers, as a
    # shared file system would be.
    sessiondir = workdir / "sessiondir"
    sessiondir.mkdir()
    machine = plan.lan.host_ip
    admin = workdir / "admin"
    with contextlib.ExitStack() as stack:
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
        stack.enter_context(served(apt_cacher_ng(workdir, machine), machine, APT_PROXY_PORT, workdir / "acng.log"))
        inventory = site_inventory(plan, hosts, admin, checksums, wheel, pillar)
        site = SaltSite(plan, hosts, workdir, inventory, admin / "pillar", admin_ssh_key(), admin / "known_hosts",
                        boot, timings=timings)
        site.init(progress)
        site.deploy(progress)
        timings["setup"] = time.monotonic() - started
        progress(f"==> site timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield site


def push_image(site: SaltSite, layout: Path, repository: str, account: dict[str, str], workdir: Path) -> None:
    """Push an OCI layout over TLS (site CA) with a registry account (pillar {name, password})."""
    certs = workdir / "registry-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(site_ca(site), certs / "ca.crt")
    registry = site.plan.address(site.plan.with_role("registry").name)
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"--dest-cert-dir={certs}", f"--dest-creds={account['name']}:{account['password']}",
         f"oci:{layout}:{LAYOUT_TAG}", f"docker://{registry}:5000/{repository}"],
        check=True, capture_output=True, text=True,
    )


def push_site_images(site: SaltSite, workdir: Path, progress: Progress = print) -> None:
    """After highstate: the site admin pushes the pod sandbox image, VO alpha's manager its images
    (each with /etc/ark-image naming it)."""
    accounts = example_pillar()["registry"]
    progress("==> pushing ark/pause:3.2 (site admin account), vo-alpha/base:1 and vo-alpha/tools:2 (VO alpha's "
             "push account) into the site registry over TLS")
    push_image(site, pause_layout(K8S_BIN / "pause"), "ark/pause:3.2", accounts["admin_user"], workdir)
    for tag in ("base:1", "tools:2"):
        push_image(site, vo_image_layout(tag, progress), f"vo-alpha/{tag}", accounts["push_users"]["alpha"], workdir)


def site_ca(site: SaltSite) -> Path:
    """The site CA's certificate, as every host has it."""
    return site.with_role("registry").root / "etc/ark/pki/ca.crt"


def grid_client(site: SaltSite, workdir: Path, dn: str | None = None) -> ArcClient:
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
