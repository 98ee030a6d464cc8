"""ARK sites built by Salt on systemd test hosts, for the demo and the tests.

A site is a plan: which hosts, with which roles, on one LAN (localsite.netns.Lan) with no route
out, as a site with no internet. ALL_IN_ONE is one host with every role; SPLIT gives each role
hosts of its own (control plane, registry, CE, two workers with pod ranges of their own), shares
the site CA through pillar, and gives the CE and the workers one session directory, as a shared
file system would.

What a site runs for itself, this module runs on the machine's side of the LAN (10.213.L.1), and
stops by PID afterwards:
- a files repository (python's http.server): the Kubernetes binaries built from Debian's source
  (/var/cache/ark/kubernetes-*/bin) under kubernetes/<version>/, and the arc_bridge wheel with its
  dependencies' wheels and its .sha256;
- an apt proxy (Debian's apt-cacher-ng), named to the hosts through pillar ark:apt:proxy.
The pillar is the example site (pillar/site.sls), an overlay for this site, and one file per host,
selected by minion id in top.sls as pillar/top.sls describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .arex import ArcClient
from .cluster import K8S_BIN
from .host import Host, highstate, install_salt, kubelet_sysctls, running_host
from .images import LAYOUT_TAG, debian_mirror, pause_layout, vo_base_layout
from .netns import Lan
from .pki import make_ca
from .processes import stop

REPO = Path(__file__).resolve().parents[1]
FILES_PORT = 8021
APT_PROXY_PORT = 3142
K8S_VERSION = "1.20.2"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
WHEEL_CACHE = Path("/var/cache/ark/bridge-wheels")
ACNG_CACHE = Path("/var/cache/ark/apt-cacher-ng")
HIGHSTATE_TIMEOUT = 1800.0
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
    first: dict[str, tuple[int, Any]]  # per host, (returncode, result) of the first highstate
    second: dict[str, tuple[int, Any]]  # ... and of the re-apply
    timings: dict[str, float] = field(default_factory=dict)

    def with_role(self, role: str) -> Host:
        return self.hosts[self.plan.with_role(role).name]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bridge_wheels() -> Path:
    """The arc_bridge wheel of the current tree and its dependencies' wheels (those are cached)."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    if not any(WHEEL_CACHE.glob("kubernetes-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(WHEEL_CACHE), str(REPO)], check=True)
    for old in WHEEL_CACHE.glob("arc_bridge-*.whl"):
        old.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(WHEEL_CACHE), str(REPO)], check=True
    )
    return WHEEL_CACHE


def files_repository(directory: Path) -> tuple[Path, dict[str, str], str]:
    """The site mirror's tree: (root, sha256 per Kubernetes binary, arc_bridge wheel name)."""
    kube = directory / "kubernetes" / K8S_VERSION
    kube.mkdir(parents=True)
    checksums = {}
    for name in K8S_BINARIES:
        (kube / name).symlink_to(K8S_BIN / name)
        checksums[name] = _sha256(K8S_BIN / name)
    wheels = bridge_wheels()
    for wheel in wheels.glob("*.whl"):
        (directory / wheel.name).symlink_to(wheel)
    (bridge,) = [w.name for w in wheels.glob("arc_bridge-*.whl")]
    (directory / f"{bridge}.sha256").write_text(f"{_sha256(wheels / bridge)}  {bridge}\n")
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


def site_pillar(plan: SitePlan, directory: Path, checksums: dict[str, str], wheel: str) -> Path:
    """The example site, this site's overlay (mirrors, where each service runs, names, the CA of a
    site on several hosts) and a file per host (roles, address, name), laid out as pillar/top.sls
    describes."""
    (directory / "hosts").mkdir(parents=True)
    shutil.copy(REPO / "pillar" / "site.sls", directory / "site.sls")
    machine = plan.lan.host_ip
    ce = plan.with_role("ce").name
    overlay: dict[str, Any] = {
        "files_repo": f"http://{machine}:{FILES_PORT}",
        "apt": {"proxy": f"http://{machine}:{APT_PROXY_PORT}"},
        "hosts": {host.name: plan.address(host.name) for host in plan.hosts},
        "kubernetes": {
            "checksums": {K8S_VERSION: checksums},
            "apiserver": {"address": plan.address(plan.with_role("control-plane").name)},
            # A nested kubelet on a shared machine: report status every second, and do not let
            # the machine's disk or memory use (not this site's) evict or taint anything.
            "kubelet_config": {
                "nodeStatusUpdateFrequency": "1s",
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            },
        },
        "registry": {"address": plan.address(plan.with_role("registry").name)},
        "arex": {"hostname": ce, "listen": plan.address(ce), "infoprovider_period": 10},
        "bridge": {"wheel": wheel},
    }
    if len(plan.hosts) > 1:
        ca = make_ca(directory.parent / "site-ca", "ark-site-ca")
        overlay["pki"] = {"ca": {"cert": ca.cert.read_text(), "key": ca.key.read_text()}}
    (directory / "local.sls").write_text(yaml.safe_dump({"ark": overlay}))
    (directory / "local.sls").chmod(0o600)
    top: dict[str, list[str]] = {"*": ["site", "local"]}
    for host in plan.hosts:
        own = {"roles": list(host.roles), "node_ip": plan.address(host.name),
               "kubernetes": {"node_name": host.name}}
        if host.pod_cidr:
            own["kubernetes"]["pod_cidr"] = host.pod_cidr
        (directory / "hosts" / f"{host.name}.sls").write_text(yaml.safe_dump({"ark": own}))
        top[host.name] = [f"hosts.{host.name}"]
    (directory / "top.sls").write_text(yaml.safe_dump({"base": top}))
    return directory


@contextlib.contextmanager
def running_lan(lan: Lan) -> Iterator[Lan]:
    lan.create()
    try:
        yield lan
    finally:
        lan.delete()


@contextlib.contextmanager
def running_salt_site(plan: SitePlan, workdir: Path, progress: Progress = print) -> Iterator[SaltSite]:
    """Boot the plan's hosts, highstate each, then re-apply each; the hosts run until the block ends."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    repo, checksums, wheel = files_repository(workdir / "files")
    pillar = site_pillar(plan, workdir / "pillar", checksums, wheel)
    # One directory of the machine's as the session directory of the CE and the workers, as a
    # shared file system would be.
    sessiondir = workdir / "sessiondir"
    sessiondir.mkdir()
    machine = plan.lan.host_ip
    with contextlib.ExitStack() as stack:
        # The hosts' /proc/sys is read-only: the machine takes the kernel settings kubelet needs.
        stack.enter_context(kubelet_sysctls())
        stack.enter_context(running_lan(plan.lan))
        hosts: dict[str, Host] = {}
        for spec in plan.hosts:
            binds = [f"{sessiondir}:{SESSIONDIR}"] if spec.shares_sessiondir else []
            hosts[spec.name] = stack.enter_context(running_host(
                spec.name, workdir / spec.name, index=spec.number, lan=plan.lan, binds=binds, progress=progress))
            install_salt(hosts[spec.name], progress)
        timings["hosts_up"] = time.monotonic() - started
        files = [sys.executable, "-m", "http.server", "--bind", machine, "--directory", str(repo), str(FILES_PORT)]
        with served(files, machine, FILES_PORT, workdir / "files.log"), \
                served(apt_cacher_ng(workdir, machine), machine, APT_PROXY_PORT, workdir / "acng.log"):
            results: dict[str, dict[str, tuple[int, Any]]] = {"first": {}, "second": {}}
            for run in results:
                for spec in plan.hosts:
                    progress(f"==> {run} highstate of {spec.name} ({', '.join(spec.roles)})")
                    t0 = time.monotonic()
                    results[run][spec.name] = highstate(hosts[spec.name], pillar, timeout=HIGHSTATE_TIMEOUT)
                    timings[f"{run}_highstate_{spec.name}"] = time.monotonic() - t0
                    progress(f"==> {run} highstate of {spec.name}: {time.monotonic() - t0:.1f} s")
                    (workdir / f"{run}-{spec.name}.json").write_text(json.dumps(results[run][spec.name], indent=1))
        timings["setup"] = time.monotonic() - started
        progress(f"==> site timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield SaltSite(plan, hosts, workdir, results["first"], results["second"], timings)


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
    """After highstate: the site admin pushes the pod sandbox image, VO alpha's manager its base image."""
    accounts = example_pillar()["registry"]
    progress("==> pushing ark/pause:3.2 (site admin account) and vo-alpha/base:1 (VO alpha's push account) "
             "into the site registry over TLS")
    push_image(site, pause_layout(K8S_BIN / "pause"), "ark/pause:3.2", accounts["admin_user"], workdir)
    push_image(site, vo_base_layout(progress), "vo-alpha/base:1", accounts["push_users"]["alpha"], workdir)


def site_ca(site: SaltSite) -> Path:
    """The site CA's certificate, as every host has it."""
    return site.with_role("registry").root / "etc/ark/pki/ca.crt"


class SiteArcClient(ArcClient):
    """The ARC client on this machine, seeing the site's host names (the A-REX endpoint and
    certificate name) through a private /etc/hosts in its own mount namespace: the machine's
    stays untouched."""

    hosts_file: Path

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        bound = ("unshare", "--mount", "--propagation=private", "sh", "-c",
                 f'mount --bind {self.hosts_file} /etc/hosts && exec "$@"', "sh")
        return super().run(*bound, *args, cwd=cwd, timeout=timeout)


def grid_client(site: SaltSite, workdir: Path) -> SiteArcClient:
    """An ARC client for a grid user of VO alpha (pillar ark:vos:alpha:dns), certified by the site CA."""
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
    dn = example_pillar()["vos"]["alpha"]["dns"][0]
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", dn], check=True, capture_output=True)
    key.chmod(0o400)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-CAserial", str(workdir / "ca.srl"), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
                    "-out", str(cert)],
                   check=True, capture_output=True)
    ce = site.plan.with_role("ce").name
    SiteArcClient.hosts_file = workdir / "hosts"
    SiteArcClient.hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n{site.plan.address(ce)}\t{ce}\n")
    arex = types.SimpleNamespace(workdir=workdir, user_cert=cert, user_key=key, ca_dir=ca_dir,
                                 endpoint=site.plan.arex_endpoint)
    return SiteArcClient.create(arex)
