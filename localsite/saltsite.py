"""The all-in-one ARK site built by Salt on a systemd test host, for the demo and the tests.

The host has no route out, as a site with no internet. What such a site runs for itself, this
module runs on the machine's side of the host's veth (10.213.N.1), and stops by PID afterwards:
- a files repository (python's http.server): the Kubernetes binaries built from Debian's source
  (/var/cache/ark/kubernetes-*/bin) under kubernetes/<version>/, and the arc_bridge wheel with its
  dependencies' wheels and its .sha256;
- an apt proxy (Debian's apt-cacher-ng), named to the host through pillar ark:apt:proxy.
The pillar is the example site (pillar/site.sls) with an overlay for this host.
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
from .host import Host, highstate, install_salt, kubelet_sysctls, running_host
from .images import LAYOUT_TAG, debian_mirror, pause_layout, vo_base_layout
from .processes import stop

REPO = Path(__file__).resolve().parents[1]
HOST_INDEX = 21
HOST_NAME = "ark-aio"
HOST_SIDE = f"10.213.{HOST_INDEX}.1"
NODE_IP = f"10.213.{HOST_INDEX}.2"
FILES_PORT = 8021
APT_PROXY_PORT = 3142
AREX_ENDPOINT = f"https://{HOST_NAME}:8443/arex"
K8S_VERSION = "1.20.2"
K8S_BIN = Path("/var/cache/ark/kubernetes-1.20.5+really1.20.2/bin")
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
WHEEL_CACHE = Path("/var/cache/ark/bridge-wheels")
ACNG_CACHE = Path("/var/cache/ark/apt-cacher-ng")
HIGHSTATE_TIMEOUT = 1800.0

Progress = Callable[[str], None]


def example_pillar() -> dict[str, Any]:
    return yaml.safe_load((REPO / "pillar" / "site.sls").read_text())["ark"]


@dataclass
class SaltSite:
    host: Host
    workdir: Path
    first: tuple[int, Any]  # (returncode, result) of the first highstate
    second: tuple[int, Any]  # ... and of the re-apply
    timings: dict[str, float] = field(default_factory=dict)


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
def served(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A server process of ours listening on HOST_SIDE:port; stopped by its PID on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(HOST_SIDE, port, process)
        yield process
    finally:
        stop(process)


def apt_cacher_ng(workdir: Path) -> list[str]:
    """Debian's apt-cacher-ng listening only on HOST_SIDE, fetching from this machine's mirror."""
    ACNG_CACHE.mkdir(parents=True, exist_ok=True)
    (workdir / "acng-log").mkdir()
    config = workdir / "acng-conf"
    shutil.copytree("/etc/apt-cacher-ng", config)
    # The package leaves the Debian backend empty (its debconf question); without it every
    # request for /debian is answered 503.
    (config / "backends_debian").write_text(debian_mirror().rstrip("/") + "/\n")
    return [
        "/usr/sbin/apt-cacher-ng", "-c", str(config),
        "ForeGround=1", f"BindAddress={HOST_SIDE}", f"Port={APT_PROXY_PORT}",
        f"CacheDir={ACNG_CACHE}", f"LogDir={workdir / 'acng-log'}",
        f"SocketPath={workdir / 'acng.socket'}", f"PidFile={workdir / 'acng.pid'}",
    ]


def site_pillar(directory: Path, checksums: dict[str, str], wheel: str) -> Path:
    """The example site with this host's overlay: every role, this host's addresses and mirrors."""
    directory.mkdir()
    shutil.copy(REPO / "pillar" / "site.sls", directory / "site.sls")
    overlay = {
        "ark": {
            "node_ip": NODE_IP,
            "files_repo": f"http://{HOST_SIDE}:{FILES_PORT}",
            "apt": {"proxy": f"http://{HOST_SIDE}:{APT_PROXY_PORT}"},
            "kubernetes": {
                "checksums": {K8S_VERSION: checksums},
                "apiserver": {"address": NODE_IP},
                "node_name": HOST_NAME,
                # A nested kubelet on a shared machine: report status every second, and do not
                # let the machine's disk or memory use (not this site's) evict or taint anything.
                "kubelet_config": {
                    "nodeStatusUpdateFrequency": "1s",
                    "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                },
            },
            "registry": {"address": NODE_IP},
            "arex": {"hostname": HOST_NAME, "listen": NODE_IP, "infoprovider_period": 10},
            "bridge": {"wheel": wheel},
        }
    }
    (directory / "aio.sls").write_text(yaml.safe_dump(overlay))
    (directory / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["site", "aio"]}}))
    return directory


@contextlib.contextmanager
def running_salt_site(workdir: Path, progress: Progress = print) -> Iterator[SaltSite]:
    """Boot the host, highstate it with every role, re-apply; the host runs until the block ends."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    repo, checksums, wheel = files_repository(workdir / "files")
    pillar = site_pillar(workdir / "pillar", checksums, wheel)
    # The host's /proc/sys is read-only: the machine takes the kernel settings its kubelet needs.
    with kubelet_sysctls(), running_host(HOST_NAME, workdir / "host", index=HOST_INDEX, progress=progress) as host:
        install_salt(host, progress)
        # A-REX's postinst (and much else) needs the host's own name to resolve.
        # debootstrap's minbase has no /etc/hosts at all.
        host.write_file("/etc/hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{NODE_IP}\t{HOST_NAME}\n")
        files = [sys.executable, "-m", "http.server", "--bind", HOST_SIDE, "--directory", str(repo), str(FILES_PORT)]
        with served(files, FILES_PORT, workdir / "files.log"), \
                served(apt_cacher_ng(workdir), APT_PROXY_PORT, workdir / "acng.log"):
            results = []
            for run in ("first", "second"):
                progress(f"==> {run} highstate (all roles: control-plane, worker, registry, ce)")
                t0 = time.monotonic()
                results.append(highstate(host, pillar, timeout=HIGHSTATE_TIMEOUT))
                timings[f"{run}_highstate"] = time.monotonic() - t0
                progress(f"==> {run} highstate: {timings[f'{run}_highstate']:.1f} s")
                (workdir / f"{run}.json").write_text(json.dumps(results[-1], indent=1))
        timings["setup"] = time.monotonic() - started
        progress(f"==> site timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield SaltSite(host, workdir, results[0], results[1], timings)


def push_image(host: Host, layout: Path, repository: str, workdir: Path) -> None:
    """What a VO manager does: push an OCI layout over TLS (site CA) with a push account."""
    certs = workdir / "registry-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(host.root / "etc/ark/pki/ca.crt", certs / "ca.crt")
    push = example_pillar()["registry"]["push_users"]["alpha"]
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"--dest-cert-dir={certs}", f"--dest-creds={push['name']}:{push['password']}",
         f"oci:{layout}:{LAYOUT_TAG}", f"docker://{NODE_IP}:5000/{repository}"],
        check=True, capture_output=True, text=True,
    )


def push_site_images(host: Host, workdir: Path, progress: Progress = print) -> None:
    """The pod sandbox image and VO alpha's base image, as the VO manager pushes them after highstate."""
    progress("==> pushing ark/pause:3.2 and vo-alpha/base:1 into the site registry (TLS, push account)")
    push_image(host, pause_layout(K8S_BIN / "pause"), "ark/pause:3.2", workdir)
    push_image(host, vo_base_layout(progress), "vo-alpha/base:1", workdir)


class SiteArcClient(ArcClient):
    """The ARC client on this machine, seeing the host's name (the A-REX endpoint and certificate
    name) through a private /etc/hosts in its own mount namespace: the machine's stays untouched."""

    hosts_file: Path

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        bound = ("unshare", "--mount", "--propagation=private", "sh", "-c",
                 f'mount --bind {self.hosts_file} /etc/hosts && exec "$@"', "sh")
        return super().run(*bound, *args, cwd=cwd, timeout=timeout)


def grid_client(host: Host, workdir: Path) -> SiteArcClient:
    """An ARC client for a grid user of VO alpha (pillar ark:vos:alpha:dns), certified by the site CA."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    ca_dir = workdir / "certificates"
    ca_dir.mkdir()
    shutil.copy(host.root / "etc/ark/pki/ca.crt", ca_dir / "ark-site-ca.pem")
    subprocess.run(["openssl", "rehash", str(ca_dir)], check=True)
    key, csr, cert, ext = (workdir / name for name in ("userkey.pem", "user.csr", "usercert.pem", "ext.cnf"))
    ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=clientAuth\n")
    dn = example_pillar()["vos"]["alpha"]["dns"][0]
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", dn], check=True, capture_output=True)
    key.chmod(0o400)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(host.root / "etc/ark/pki/ca.crt"),
                    "-CAkey", str(host.root / "etc/ark/pki/ca.key"), "-CAserial", str(workdir / "ca.srl"),
                    "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True)
    SiteArcClient.hosts_file = workdir / "hosts"
    SiteArcClient.hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n{NODE_IP}\t{HOST_NAME}\n")
    arex = types.SimpleNamespace(workdir=workdir, user_cert=cert, user_key=key, ca_dir=ca_dir, endpoint=AREX_ENDPOINT)
    return SiteArcClient.create(arex)
