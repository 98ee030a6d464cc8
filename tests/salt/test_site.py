"""The all-in-one site on a real systemd host: highstate of salt/ with every role, then checks.

The host has no route out, as a site with no internet. What such a site runs for itself, this
module runs on the machine's side of the host's veth (10.213.N.1), and stops by PID afterwards:
- a files repository (python's http.server): the Kubernetes binaries built from Debian's source
  (/var/cache/ark/kubernetes-*/bin) under kubernetes/<version>/, and the arc_bridge wheel with its
  dependencies' wheels and its .sha256;
- an apt proxy (Debian's apt-cacher-ng), named to the host through pillar ark:apt:proxy.
The test pillar is the example site (pillar/site.sls) with an overlay for this host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from localsite.arex import ArcClient
from localsite.images import LAYOUT_TAG, debian_mirror, pause_layout, vo_base_layout
from localsite.host import changed_states, highstate, install_salt, kubelet_sysctls, running_host

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: boots a systemd-nspawn test host"),
]

REPO = Path(__file__).resolve().parents[2]
HOST_INDEX = 21
HOST_NAME = "ark-aio"
HOST_SIDE = f"10.213.{HOST_INDEX}.1"
NODE_IP = f"10.213.{HOST_INDEX}.2"
FILES_PORT = 8021
APT_PROXY_PORT = 3142
K8S_VERSION = "1.20.2"
K8S_BIN = Path("/var/cache/ark/kubernetes-1.20.5+really1.20.2/bin")
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
WHEEL_CACHE = Path("/var/cache/ark/bridge-wheels")
ACNG_CACHE = Path("/var/cache/ark/apt-cacher-ng")
HIGHSTATE_TIMEOUT = 1800.0

SERVICES = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
    "docker-registry", "arkd", "arc-arex", "arc-arex-ws",
)
SECRET_FILES = (
    "/etc/ark/pki/ca.key", "/etc/ark/pki/sa.key", "/etc/ark/pki/apiserver.key",
    "/etc/ark/pki/apiserver-kubelet-client.key", "/etc/ark/pki/controller-manager.key",
    "/etc/ark/pki/scheduler.key", "/etc/ark/pki/admin.key", "/etc/ark/pki/kubelet.key",
    "/etc/ark/pki/kubelet-serving.key", "/etc/ark/pki/arkd.key", "/etc/ark/pki/arex.key",
    "/etc/ark/pki/registry.key", "/etc/ark/arex/hostkey.pem",
    "/etc/ark/admin.kubeconfig", "/etc/ark/arkd.kubeconfig",
    "/etc/containerd/config.toml", "/etc/ark/kubernetes/vo-objects.yaml",
)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
def served(argv: list[str], port: int, log: Path):
    """A server process of ours listening on HOST_SIDE:port; stopped by its PID on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(HOST_SIDE, port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def failed_states(result) -> list[str]:
    if not isinstance(result, dict):
        return [str(result)]
    return [f"{key}: {state.get('comment')}" for key, state in result.items() if state.get("result") is not True]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The host after two highstates: (host, first result, second result, timings)."""
    workdir = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    timings = {}
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
            progress("==> first highstate (all roles)")
            t0 = time.monotonic()
            first = highstate(host, pillar, timeout=HIGHSTATE_TIMEOUT)
            timings["first_highstate"] = time.monotonic() - t0
            progress(f"==> first highstate: {timings['first_highstate']:.1f} s")
            (workdir / "first.json").write_text(json.dumps(first, indent=1))
            t0 = time.monotonic()
            second = highstate(host, pillar, timeout=HIGHSTATE_TIMEOUT)
            timings["second_highstate"] = time.monotonic() - t0
            progress(f"==> second highstate: {timings['second_highstate']:.1f} s")
            (workdir / "second.json").write_text(json.dumps(second, indent=1))
        timings["setup"] = time.monotonic() - started
        progress(f"==> site timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
        yield host, first, second, timings


def test_first_highstate_succeeds(site):
    _, (returncode, result), _, _ = site
    assert failed_states(result) == []
    assert returncode == 0


def test_second_highstate_changes_nothing(site):
    _, _, (returncode, result), _ = site
    assert failed_states(result) == []
    assert returncode == 0
    assert changed_states(result) == []


def test_services_enabled_and_running(site):
    infra = site[0].testinfra()
    for name in SERVICES:
        service = infra.service(name)
        journal = infra.run(f"journalctl --no-pager -n 40 -u {name}").stdout
        assert service.is_enabled, f"{name}:\n{journal}"
        assert service.is_running, f"{name}:\n{journal}"


def test_node_ready(site):
    host = site[0]
    kubectl = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig"]
    deadline = time.monotonic() + 60
    while True:
        result = host.run(*kubectl, "get", "node", HOST_NAME, "-o", "json")
        conditions = {}
        if result.returncode == 0:
            conditions = {c["type"]: c["status"] for c in json.loads(result.stdout)["status"]["conditions"]}
        if conditions.get("Ready") == "True" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert conditions.get("Ready") == "True", (result.stderr, conditions)


def test_keys_and_secrets_are_private(site):
    infra = site[0].testinfra()
    for path in SECRET_FILES:
        secret = infra.file(path)
        assert secret.exists, path
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), path
    # The registry runs as docker-registry and reads its own copies, which no one else may read.
    for path in ("/etc/docker/registry/tls.key", "/etc/docker/registry/htpasswd"):
        secret = infra.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "docker-registry", 0o640), path


def _registry_get(host, path: str, credentials: tuple[str, str] | None = None) -> int:
    """Status of a GET to the registry from outside the host, over TLS verified with the site CA."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(host.root / "etc/ark/pki/ca.crt"))
    request = urllib.request.Request(f"https://{NODE_IP}:5000{path}")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_registry_refuses_anonymous_pulls(site):
    host = site[0]
    pillar = yaml.safe_load((REPO / "pillar" / "site.sls").read_text())["ark"]["registry"]
    assert _registry_get(host, "/v2/") == 401
    assert _registry_get(host, "/v2/vo-alpha/base/manifests/1") == 401
    assert _registry_get(host, "/v2/", ("ark-pull", "wrong-password")) == 401
    pull = pillar["pull_user"]
    assert _registry_get(host, "/v2/", (pull["name"], pull["password"])) == 200


# Every TCP listener of the site, by process (ss truncates names to 15 characters); containerd's
# CRI streaming server takes a random loopback port. Nothing listens on UDP.
EXPECTED_LISTENERS = {
    ("etcd", "127.0.0.1:2379"),
    ("etcd", "127.0.0.1:2380"),
    ("kube-apiserver", f"{NODE_IP}:6443"),
    ("kube-controller", "127.0.0.1:10257"),
    ("kube-scheduler", "127.0.0.1:10259"),
    ("kubelet", f"{NODE_IP}:10250"),
    ("kubelet", "127.0.0.1:10248"),
    ("containerd", "127.0.0.1:*"),
    ("docker-registry", f"{NODE_IP}:5000"),
    ("arched", f"{NODE_IP}:8443"),  # A-REX's REST interface, on pillar ark:arex:listen only
}


def _listeners(infra, protocol: str) -> set[tuple[str, str]]:
    found = set()
    for line in infra.check_output(f"ss -l{protocol}npH").splitlines():
        fields = line.split()
        local, users = fields[3], fields[-1]
        process = users.split('"')[1] if '"' in users else users
        if process == "containerd" and local.startswith("127.0.0.1:"):
            local = "127.0.0.1:*"
        found.add((process, local))
    return found


def test_only_expected_ports_listen(site):
    infra = site[0].testinfra()
    assert _listeners(infra, "t") == EXPECTED_LISTENERS
    assert _listeners(infra, "u") == set()


def _push(host, layout: Path, repository: str, tmp_path: Path) -> None:
    """What a VO manager does: push an OCI layout over TLS (site CA) with a push account."""
    certs = tmp_path / "registry-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(host.root / "etc/ark/pki/ca.crt", certs / "ca.crt")
    push = yaml.safe_load((REPO / "pillar" / "site.sls").read_text())["ark"]["registry"]["push_users"]["alpha"]
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"--dest-cert-dir={certs}", f"--dest-creds={push['name']}:{push['password']}",
         f"oci:{layout}:{LAYOUT_TAG}", f"docker://{NODE_IP}:5000/{repository}"],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def site_images(site, tmp_path_factory):
    """The pod sandbox image and the VO's base image in the site's registry, as the VO manager
    pushes them after highstate; returns the host."""
    host = site[0]
    workdir = tmp_path_factory.mktemp("images")
    _push(host, pause_layout(K8S_BIN / "pause"), "ark/pause:3.2", workdir)
    _push(host, vo_base_layout(progress), "vo-alpha/base:1", workdir)
    return host


def test_job_runs_as_a_pod(site_images):
    """A Job as arkd makes it (arkd's own credentials, the VO's namespace, image and uid) runs to
    Complete with images pulled from the site registry, and its log comes back through the API."""
    host = site_images
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "site-proof", "namespace": "ark-alpha"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": 20001, "runAsGroup": 20001, "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "payload", "image": f"{NODE_IP}:5000/vo-alpha/base:1",
                    "command": ["/bin/sh", "-c", "echo hello from $(id -u) on the site"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                }],
            }},
        },
    }
    created = host.run("kubectl", "--kubeconfig=/etc/ark/arkd.kubeconfig", "create", "-f", "-", input=json.dumps(job))
    assert created.returncode == 0, created.stderr
    admin = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig", "-n", "ark-alpha"]
    started = time.monotonic()
    waited = host.run(*admin, "wait", "--for=condition=complete", "--timeout=120s", "job/site-proof", timeout=150)
    elapsed = time.monotonic() - started
    pods = host.run(*admin, "get", "pods", "-o", "wide").stdout
    events = host.run(*admin, "get", "events").stdout
    assert waited.returncode == 0, f"{waited.stderr}\n{pods}\n{events}"
    print(f"job create -> Complete: {elapsed:.1f} s", file=sys.stderr)
    logs = host.run(*admin, "logs", "job/site-proof")
    assert logs.stdout.strip() == "hello from 20001 on the site", logs.stderr


class SiteArcClient(ArcClient):
    """The ARC client on this machine, seeing the host's name (the A-REX endpoint and certificate
    name) through a private /etc/hosts in its own mount namespace: the machine's stays untouched."""

    hosts_file: Path

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        bound = ("unshare", "--mount", "--propagation=private", "sh", "-c",
                 f'mount --bind {self.hosts_file} /etc/hosts && exec "$@"', "sh")
        return super().run(*bound, *args, cwd=cwd, timeout=timeout)


def test_grid_job_from_the_arc_client(site_images, tmp_path):
    """The issue's end-to-end proof: arcsub from outside the host, over TLS to A-REX (host
    certificate from the site PKI), mapped by the VO's authgroup to its account, run by arkd as a
    pod, and its output back with arcget."""
    host = site_images
    tmp_path.chmod(0o755)
    ca_dir = tmp_path / "certificates"
    ca_dir.mkdir()
    shutil.copy(host.root / "etc/ark/pki/ca.crt", ca_dir / "ark-site-ca.pem")
    subprocess.run(["openssl", "rehash", str(ca_dir)], check=True)
    # A grid user of VO alpha (pillar ark:vos:alpha:dns), certified by the site CA.
    key, csr, cert, ext = (tmp_path / name for name in ("userkey.pem", "user.csr", "usercert.pem", "ext.cnf"))
    ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=clientAuth\n")
    dn = yaml.safe_load((REPO / "pillar" / "site.sls").read_text())["ark"]["vos"]["alpha"]["dns"][0]
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", dn], check=True, capture_output=True)
    key.chmod(0o400)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(host.root / "etc/ark/pki/ca.crt"),
                    "-CAkey", str(host.root / "etc/ark/pki/ca.key"), "-CAserial", str(tmp_path / "ca.srl"),
                    "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True)
    SiteArcClient.hosts_file = tmp_path / "hosts"
    SiteArcClient.hosts_file.write_text(Path("/etc/hosts").read_text() + f"\n{NODE_IP}\t{HOST_NAME}\n")
    arex = types.SimpleNamespace(workdir=tmp_path, user_cert=cert, user_key=key, ca_dir=ca_dir,
                                 endpoint=f"https://{HOST_NAME}:8443/arex")
    client = SiteArcClient.create(arex)
    started = time.monotonic()
    job = client.submit('&(executable="/bin/sh")(arguments="-c" "echo hello grid; id -u")'
                        '(stdout="stdout.txt")(jobname="site")', cwd=tmp_path)
    assert client.wait(job, timeout=240) == "Finished"
    print(f"grid job arcsub -> Finished: {time.monotonic() - started:.1f} s", file=sys.stderr)
    results = client.get(job, tmp_path / "results")
    assert (results / "stdout.txt").read_text() == "hello grid\n20001\n"
