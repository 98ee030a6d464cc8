"""A real single-node Kubernetes 1.20.2 on this machine, for ARK's tests, demo and benchmark.

Every component (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
kubelet and an image registry) runs as a plain process inside the network namespace `ark-site`.
The host reaches the API server and the registry over a veth pair on the node address; nothing
listens on any other host address.

State lives in two places:
  - WORKDIR (chosen by the caller): configuration, PKI, etcd data, container and kubelet roots,
    registry storage, and logs/<component>.log;
  - RUN_DIR (fixed, short): unix sockets, containerd state, and one pid file per component.
    Sockets need a short path (108 bytes at most), and a fixed place lets `teardown()` find a
    cluster left behind by a crashed run. The fixed namespace name allows one cluster at a time.

Teardown stops only what this code started: components by the pids recorded at launch, pod
processes from the cgroup subtree given to the kubelet, and container shims that name our
containerd socket on their command line.

CLI: `python -m localsite.cluster up WORKDIR [--label KEY=VALUE ...]` runs a cluster until Ctrl-C
or SIGTERM; `python -m localsite.cluster down` cleans up after a crashed run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localsite import images, pki
from localsite.host import KUBELET_SYSCTLS
from localsite.netns import Netns

K8S_BIN = Path("/var/cache/ark/kubernetes-1.20.5+really1.20.2/bin")
CNI_BIN = Path("/usr/lib/cni")
RUN_DIR = Path("/run/ark-site")
NETNS = Netns(name="ark-site", host_if="ark-site0", host_ip="10.213.0.1", node_ip="10.213.0.2", prefix_len=30)
POD_SUBNET = "10.214.0.0/24"
SERVICE_CIDR = "10.215.0.0/24"
SERVICE_IP = "10.215.0.1"  # first address of SERVICE_CIDR: the `kubernetes` service
NODE_NAME = "ark-node-1"
API_PORT = 6443
REGISTRY_PORT = 5000
# Pods go below this cgroup in every v1 hierarchy, so teardown knows exactly which processes
# are pod processes of this cluster.
CGROUP_PARENT = "ark-site"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PAUSE_IMAGE = "ark/pause:3.2"
DEFAULT_VO_IMAGES = ("vo-alpha/base:1",)
# Longest socket kubelet makes below its root dir is about 45 bytes; unix sockets allow 108.
MAX_KUBELET_ROOT = 60

Progress = Callable[[str], None]


class ClusterStartError(RuntimeError):
    """A component failed to start; the message names it and quotes the tail of its log."""


@dataclass
class Cluster:
    workdir: Path
    kubeconfig: Path  # admin (system:masters)
    server: str  # https://NODE_IP:6443
    ca_cert: Path
    registry: str  # NODE_IP:5000, plain HTTP
    node_name: str
    node_ip: str
    bin_dir: Path  # kubectl and the other Kubernetes binaries
    netns: str
    pause_image: str
    vo_base_layout: Path  # cached OCI layout of the VO base image, for push_base_image
    _ca: pki.CertKey = field(repr=False)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl as cluster admin; with check, a failure raises CalledProcessError (with stderr)."""
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
        )

    def make_kubeconfig(self, name: str, user_cn: str, groups: list[str]) -> Path:
        """A kubeconfig workdir/<name>.kubeconfig for a new client certificate (CN=user, O=groups)."""
        cred = pki.issue(self._ca, name, cn=user_cn, groups=groups, client=True)
        return _write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.server, self.ca_cert, cred)

    def push_base_image(self, repository: str) -> str:
        """Push the VO base image as `repository` (e.g. "vo-beta/base:1"); returns the full image ref."""
        ref = f"{self.registry}/{repository}"
        images.push_image(self.vo_base_layout, ref)
        return ref


def start_cluster(
    workdir: Path,
    *,
    node_labels: Mapping[str, str] | None = None,
    vo_images: Sequence[str] = DEFAULT_VO_IMAGES,
    progress: Progress = print,
    timeout: float = 180.0,
) -> Cluster:
    """Start the cluster and return once the node is Ready and the `default` service account exists.

    `vo_images` are repositories under which the VO base image is pushed. On failure everything
    started so far is torn down and ClusterStartError (or the underlying error) is raised.
    """
    workdir = workdir.resolve()
    if len(str(workdir / "kubelet")) > MAX_KUBELET_ROOT:
        raise ValueError(f"workdir path too long for kubelet's sockets (max {MAX_KUBELET_ROOT - 8} chars): {workdir}")
    if RUN_DIR.exists() or NETNS.exists():
        raise RuntimeError(
            f"a cluster is running or was left behind by a crashed run ({RUN_DIR} or netns {NETNS.name} exists); "
            "clean up with: python -m localsite.cluster down"
        )
    _fresh_workdir(workdir)
    (RUN_DIR / "pids").mkdir(parents=True)
    (RUN_DIR / "workdir").write_text(str(workdir))
    _save_sysctls()
    try:
        return _start(workdir, dict(node_labels or {}), vo_images, progress, timeout)
    except BaseException:
        progress("==> start failed: tearing down")
        teardown(progress=progress)
        raise


def stop_cluster(cluster: Cluster, progress: Progress = print) -> None:
    """Stop `cluster` and undo its traces on the host; its workdir (logs included) stays."""
    # There is only ever one cluster (fixed namespace), recorded in RUN_DIR: teardown finds it.
    teardown(progress=progress)


@contextlib.contextmanager
def running_cluster(workdir: Path, **options: object) -> Iterator[Cluster]:
    """`with running_cluster(path) as cluster:` -- start_cluster's options, teardown on exit."""
    cluster = start_cluster(workdir, **options)  # type: ignore[arg-type]
    try:
        yield cluster
    finally:
        stop_cluster(cluster, progress=options.get("progress", print))  # type: ignore[arg-type]


# --- start-up --------------------------------------------------------------------------------


def _start(
    workdir: Path, node_labels: dict[str, str], vo_images: Sequence[str], progress: Progress, timeout: float
) -> Cluster:
    pause_layout = images.pause_layout(K8S_BIN / "pause", progress)
    base_layout = images.vo_base_layout(progress)

    progress(f"==> creating network namespace {NETNS.name} (node address {NETNS.node_ip})")
    NETNS.create()

    progress("==> writing PKI and configuration")
    certs = _make_pki(workdir / "pki")
    server = f"https://{NETNS.node_ip}:{API_PORT}"
    registry = f"{NETNS.node_ip}:{REGISTRY_PORT}"
    cluster = Cluster(
        workdir=workdir,
        kubeconfig=_write_kubeconfig(workdir / "admin.kubeconfig", server, certs["ca"].cert, certs["admin"]),
        server=server,
        ca_cert=certs["ca"].cert,
        registry=registry,
        node_name=NODE_NAME,
        node_ip=NETNS.node_ip,
        bin_dir=K8S_BIN,
        netns=NETNS.name,
        pause_image=f"{registry}/{PAUSE_IMAGE}",
        vo_base_layout=base_layout,
        _ca=certs["ca"],
    )
    kubeconfigs = {
        name: _write_kubeconfig(workdir / f"{name}.kubeconfig", server, certs["ca"].cert, certs[name])
        for name in ("controller-manager", "scheduler", "kubelet")
    }
    api = _Api(server, certs["ca"], certs["admin"])
    procs = _Processes(workdir / "logs", progress)

    procs.start("registry", ["docker-registry", "serve", str(_registry_config(workdir))])
    procs.wait_until("registry", lambda: _http_ok(f"http://{registry}/v2/"), timeout)
    vo_refs = [f"{registry}/{repository}" for repository in vo_images]
    with ThreadPoolExecutor(max_workers=1) as background:
        # Pushing and pre-pulling images (seconds) overlap with the control plane starting.
        pushed = background.submit(_push_images, cluster, pause_layout, vo_images, progress)

        procs.start("etcd", _etcd_args(workdir))
        procs.start("kube-apiserver", _apiserver_args(certs))
        procs.start("containerd", ["containerd", f"--config={_containerd_config(workdir, cluster.pause_image)}"])
        procs.wait_until("kube-apiserver", lambda: api.get("/readyz") is not None, timeout)
        procs.start("kube-controller-manager", _controller_manager_args(certs, kubeconfigs["controller-manager"]))
        procs.start("kube-scheduler", _scheduler_args(kubeconfigs["scheduler"]))
        procs.wait_until("containerd", (RUN_DIR / "containerd.sock").exists, timeout)
        # Runs after the pushes (one worker). Without it the first pod pays for the pull.
        pulled = background.submit(_pull_images, [cluster.pause_image, *vo_refs], progress)
        procs.start("kubelet", _kubelet_args(workdir, certs, kubeconfigs["kubelet"], node_labels))

        procs.wait_until("kubelet", lambda: _node_ready(api), timeout, what=f"node {NODE_NAME} Ready")
        procs.wait_until(
            "kube-controller-manager",
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            timeout,
            what="service account default/default",
        )
        pushed.result()
        pulled.result()
    progress(f"==> cluster ready: KUBECONFIG={cluster.kubeconfig}")
    return cluster


def _fresh_workdir(workdir: Path) -> None:
    """Remove what an earlier cluster left in workdir (never across a mount point)."""
    mounted = _mounts_under([workdir])
    if mounted:
        raise RuntimeError(f"{workdir} still has mounts from an earlier cluster: {mounted[:3]}")
    for sub in ("pki", "etcd", "containerd", "kubelet", "registry", "cni", "cni-ipam", "logs"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)


def _make_pki(pki_dir: Path) -> dict[str, pki.CertKey]:
    ca = pki.make_ca(pki_dir, "ark-site-ca")
    pki.make_key_pair(pki_dir / "sa.key", pki_dir / "sa.pub")
    api_sans = [
        f"IP:{NETNS.node_ip}",
        "IP:127.0.0.1",
        f"IP:{SERVICE_IP}",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    return {
        "ca": ca,
        "apiserver": pki.issue(ca, "apiserver", cn="kube-apiserver", server_sans=api_sans),
        # The apiserver's identity towards kubelets (logs, exec).
        "apiserver-kubelet-client": pki.issue(
            ca, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client", groups=["system:masters"], client=True
        ),
        "admin": pki.issue(ca, "admin", cn="admin", groups=["system:masters"], client=True),
        "controller-manager": pki.issue(ca, "controller-manager", cn="system:kube-controller-manager", client=True),
        "scheduler": pki.issue(ca, "scheduler", cn="system:kube-scheduler", client=True),
        # The Node authorizer and NodeRestriction know a kubelet by this exact name and group.
        "kubelet": pki.issue(ca, "kubelet", cn=f"system:node:{NODE_NAME}", groups=["system:nodes"], client=True),
        "kubelet-serving": pki.issue(ca, "kubelet-serving", cn=NODE_NAME, server_sans=[f"IP:{NETNS.node_ip}"]),
    }


def _write_kubeconfig(path: Path, server: str, ca_cert: Path, cred: pki.CertKey) -> Path:
    # JSON is YAML, so kubectl and the Python client read this without a YAML writer here.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ark-site", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": "user", "user": {"client-certificate": str(cred.cert), "client-key": str(cred.key)}}],
        "contexts": [{"name": "ark-site", "context": {"cluster": "ark-site", "user": "user"}}],
        "current-context": "ark-site",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _push_images(cluster: Cluster, pause_layout: Path, vo_images: Sequence[str], progress: Progress) -> None:
    progress(f"==> pushing {PAUSE_IMAGE} and {', '.join(vo_images)} to {cluster.registry}")
    images.push_image(pause_layout, cluster.pause_image)
    for repository in vo_images:
        cluster.push_base_image(repository)


def _pull_images(refs: list[str], progress: Progress) -> None:
    """Pull into containerd's CRI namespace (k8s.io), where kubelet finds images present."""
    progress(f"==> pre-pulling {len(refs)} images into containerd")
    for ref in refs:
        pull = ["ctr", f"--address={RUN_DIR / 'containerd.sock'}", "--namespace=k8s.io", "images", "pull"]
        result = subprocess.run(NETNS.command([*pull, "--plain-http", ref]), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"pulling {ref} into containerd failed: {(result.stderr + result.stdout)[-2000:]}")


def _registry_config(workdir: Path) -> Path:
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "registry")}, "delete": {"enabled": True}},
        "http": {"addr": f"{NETNS.node_ip}:{REGISTRY_PORT}"},
    }
    path = workdir / "registry.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _etcd_args(workdir: Path) -> list[str]:
    # Plain HTTP is fine: etcd listens on the namespace's own loopback, reachable by the apiserver only.
    local = "http://127.0.0.1"
    return [
        "etcd",
        "--name=ark",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={local}:2379",
        f"--advertise-client-urls={local}:2379",
        f"--listen-peer-urls={local}:2380",
        f"--initial-advertise-peer-urls={local}:2380",
        f"--initial-cluster=ark={local}:2380",
    ]


def _apiserver_args(certs: dict[str, pki.CertKey]) -> list[str]:
    pki_dir = certs["ca"].cert.parent
    return [
        str(K8S_BIN / "kube-apiserver"),
        "--etcd-servers=http://127.0.0.1:2379",
        f"--bind-address={NETNS.node_ip}",
        f"--advertise-address={NETNS.node_ip}",
        f"--secure-port={API_PORT}",
        f"--tls-cert-file={certs['apiserver'].cert}",
        f"--tls-private-key-file={certs['apiserver'].key}",
        f"--client-ca-file={certs['ca'].cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--kubelet-client-certificate={certs['apiserver-kubelet-client'].cert}",
        f"--kubelet-client-key={certs['apiserver-kubelet-client'].key}",
        f"--kubelet-certificate-authority={certs['ca'].cert}",
        # The node's hostname does not resolve; its InternalIP does route.
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _controller_manager_args(certs: dict[str, pki.CertKey], kubeconfig: Path) -> list[str]:
    return [
        str(K8S_BIN / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        # Each controller acts as its own service account: the role of the controller-manager's
        # own user does not cover what the controllers do (the Job controller creating pods).
        "--use-service-account-credentials=true",
        # The token controller needs both, or service accounts get no token and the Job
        # controller cannot create pods.
        f"--service-account-private-key-file={certs['ca'].cert.parent / 'sa.key'}",
        f"--root-ca-file={certs['ca'].cert}",
    ]


def _scheduler_args(kubeconfig: Path) -> list[str]:
    return [
        str(K8S_BIN / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
    ]


def _containerd_config(workdir: Path, pause_image: str) -> Path:
    root, cni_conf = workdir / "containerd", workdir / "cni"
    cni_conf.mkdir(parents=True, exist_ok=True)
    _write_cni_config(cni_conf, workdir / "cni-ipam")
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config = f"""\
version = 2
root = "{root}"
state = "{RUN_DIR / 'containerd'}"

[grpc]
  address = "{RUN_DIR / 'containerd.sock'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'opt'}"

[{cri}]
  sandbox_image = "{pause_image}"
  # The machine lacks CAP_SYS_RESOURCE: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces below our state dir, not in /run/netns, so teardown finds them.
  netns_mounts_under_state_dir = true

[{cri}.containerd]
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  Root = "{RUN_DIR / 'runc'}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{cni_conf}"

[{cri}.registry.mirrors."{NETNS.node_ip}:{REGISTRY_PORT}"]
  endpoint = ["http://{NETNS.node_ip}:{REGISTRY_PORT}"]
"""
    path = workdir / "containerd.toml"
    path.write_text(config)
    return path


def _write_cni_config(conf_dir: Path, ipam_dir: Path) -> None:
    """Pods on a bridge inside the namespace. No masquerading: pods have nowhere to go outside.

    containerd sets up each pod's loopback itself (with the `loopback` plugin from bin_dir), so
    one network list is all the configuration CRI reads.
    """
    network = {
        "cniVersion": "0.4.0",
        "name": "ark-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "dataDir": str(ipam_dir)},
            }
        ],
    }
    (conf_dir / "10-ark-pods.conflist").write_text(json.dumps(network, indent=2) + "\n")


def _kubelet_args(
    workdir: Path, certs: dict[str, pki.CertKey], kubeconfig: Path, labels: dict[str, str]
) -> list[str]:
    _make_pod_cgroup_parent()
    config = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "cgroupDriver": "cgroupfs",  # cgroup v1 and no systemd here
        "cgroupRoot": f"/{CGROUP_PARENT}",
        "failSwapOn": False,
        "address": NETNS.node_ip,
        "authentication": {
            "x509": {"clientCAFile": str(certs["ca"].cert)},
            "webhook": {"enabled": True},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(certs["kubelet-serving"].cert),
        "tlsPrivateKeyFile": str(certs["kubelet-serving"].key),
        "clusterDomain": "cluster.local",
        "maxPods": 250,  # the pod subnet has 253 addresses
        "serializeImagePulls": False,
        # Check node status every second, not every 10 s: the node turns Ready that much sooner.
        "nodeStatusUpdateFrequency": "1s",
        # A shared test machine's disk fills up for unrelated reasons; do not let that taint the node.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
    }
    config_path = workdir / "kubelet.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    args = [
        str(K8S_BIN / "kubelet"),
        f"--config={config_path}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={workdir / 'kubelet'}",
        "--container-runtime=remote",
        f"--container-runtime-endpoint=unix://{RUN_DIR / 'containerd.sock'}",
        f"--node-ip={NETNS.node_ip}",
        f"--hostname-override={NODE_NAME}",
    ]
    if labels:
        args.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()))
    return args


def _make_pod_cgroup_parent() -> None:
    """kubelet refuses a cgroupRoot that does not exist; create it in every v1 hierarchy."""
    for hierarchy in _cgroup_v1_hierarchies():
        parent = hierarchy / CGROUP_PARENT
        parent.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset is empty: no task could run in it
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (parent / knob).write_text((hierarchy / knob).read_text())


def _node_ready(api: _Api) -> bool:
    node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class _Api:
    """Just enough of an HTTPS client to watch the cluster come up, as admin."""

    def __init__(self, server: str, ca: pki.CertKey, admin: pki.CertKey) -> None:
        self.server = server
        self.tls = ssl.create_default_context(cafile=str(ca.cert))
        self.tls.load_cert_chain(str(admin.cert), str(admin.key))

    def get(self, path: str) -> dict | None:
        """Parsed JSON of a successful GET, None for anything else (not up yet, 404, ...)."""
        try:
            with urllib.request.urlopen(self.server + path, context=self.tls, timeout=5) as response:
                body = response.read()
        except (OSError, urllib.error.URLError):
            return None
        try:
            return json.loads(body)
        except ValueError:  # /readyz answers "ok" in plain text
            return {}


def _http_ok(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except (OSError, urllib.error.URLError):
        return False


class _Processes:
    """Launches components inside the namespace, records their pids, and watches them start."""

    def __init__(self, logs: Path, progress: Progress) -> None:
        self.logs = logs
        self.progress = progress
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        self.progress(f"==> starting {name}")
        with open(self.logs / f"{name}.log", "ab") as log:
            # Own session: a Ctrl-C meant for the caller must not kill components before teardown.
            proc = subprocess.Popen(
                NETNS.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = proc
        # nsenter execs the component, so this pid is the component's own.
        (RUN_DIR / "pids" / f"{len(self.started):02d}-{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}\n")

    def wait_until(self, name: str, ready: Callable[[], bool], timeout: float, what: str = "") -> None:
        self.progress(f"==> waiting for {what or name}")
        deadline = time.monotonic() + timeout
        while not ready():
            for component, proc in self.started.items():
                if proc.poll() is not None:
                    raise ClusterStartError(f"{component} exited with {proc.returncode}\n{self._tail(component)}")
            if time.monotonic() > deadline:
                raise ClusterStartError(f"{name}: no {what or 'readiness'} after {timeout:.0f}s\n{self._tail(name)}")
            time.sleep(0.25)

    def _tail(self, name: str, lines: int = 30) -> str:
        log = self.logs / f"{name}.log"
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        return f"--- last lines of {log} ---\n" + "\n".join(text[-lines:])


# --- teardown --------------------------------------------------------------------------------


def teardown(progress: Progress = print) -> None:
    """Stop the cluster recorded in RUN_DIR, whether started by this process or a crashed one."""
    workdir_file = RUN_DIR / "workdir"
    workdir = Path(workdir_file.read_text()) if workdir_file.exists() else None
    # Reverse start order, so kubelet (started last) stops before its pods are killed and
    # cannot restart them, and containerd is still up while the shims go.
    for pidfile in sorted((RUN_DIR / "pids").glob("*.pid"), reverse=True):
        component = pidfile.stem.split("-", 1)[1]
        progress(f"==> stopping {component}")
        _stop(pidfile)
        if component == "kubelet":
            progress("==> killing pod processes and container shims")
            _kill_pod_processes()
            _kill_pids(_descendants(_our_shims()))
    for mountpoint in _mounts_under([p for p in (workdir, RUN_DIR) if p]):
        _unmount(mountpoint)
    if workdir:
        _remove_pod_logs(workdir / "kubelet" / "pods")
    _remove_pod_cgroups()
    _restore_sysctls()
    progress(f"==> removing network namespace {NETNS.name}")
    NETNS.delete()
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def _save_sysctls() -> None:
    """kubelet overwrites these machine-wide values at start; teardown puts the machine's back."""
    values = {name: (Path("/proc/sys") / name).read_text().strip() for name in KUBELET_SYSCTLS}
    (RUN_DIR / "sysctls.json").write_text(json.dumps(values, indent=2) + "\n")


def _restore_sysctls() -> None:
    saved = RUN_DIR / "sysctls.json"
    if saved.exists():
        for name, value in json.loads(saved.read_text()).items():
            (Path("/proc/sys") / name).write_text(value + "\n")


def _start_time(pid: int) -> str:
    """Process start time in clock ticks since boot: with the pid, identifies a process uniquely."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str) -> bool:
    """True while `pid` is still the process recorded (not exited, not a zombie, not reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and fields[19] == start_time


def _stop(pidfile: Path, grace: float = 10.0) -> None:
    pid_text, start_time = pidfile.read_text().split()
    pid = int(pid_text)
    if _alive(pid, start_time):
        _kill_pids({pid}, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid, start_time) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid, start_time):
            _kill_pids({pid})
    _reap(pid)
    pidfile.unlink()


def _reap(pid: int) -> None:
    """Collect the exit status if the component is our own child (not after a crashed run)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kill_pids(pids: set[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: fine
            os.kill(pid, sig)


def _cgroup_v1_hierarchies() -> list[Path]:
    # cgroup2 (the "unified" mount) is the one with a cgroup.controllers file.
    return [p for p in CGROUP_ROOT.iterdir() if (p / "tasks").exists() and not (p / "cgroup.controllers").exists()]


def _kill_pod_processes(timeout: float = 10.0) -> None:
    """SIGKILL every process in our pod cgroups until none is left (forks can race the first pass)."""
    pids_root = CGROUP_ROOT / "pids" / CGROUP_PARENT
    deadline = time.monotonic() + timeout
    while pids_root.exists() and time.monotonic() < deadline:
        pids = {int(pid) for procs in pids_root.rglob("cgroup.procs") for pid in procs.read_text().split()}
        if not pids:
            return
        _kill_pids(pids)
        time.sleep(0.1)


def _remove_pod_cgroups() -> None:
    # Every hierarchy, cgroup2 included: kubelet's cgroup library mirrors pod cgroups there too.
    for parent in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}"):
        for directory, _, _ in sorted(os.walk(parent), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):  # a just-killed process may linger a moment
                os.rmdir(directory)


def _our_shims() -> set[int]:
    """Container shims started by our containerd: their command line names its socket."""
    marker = str(RUN_DIR / "containerd.sock").encode()
    shims = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                    shims.add(int(proc.name))
    return shims


def _descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(proc.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _mounts_under(dirs: list[Path]) -> list[str]:
    """Mount points below any of `dirs`, deepest first (the order to unmount them)."""
    prefixes = [str(d).rstrip("/") + "/" for d in dirs]
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # The mount point is the fifth field, with blanks and the like escaped as octal.
        mountpoint = line.split()[4].encode().decode("unicode_escape")
        if any((mountpoint + "/").startswith(prefix) for prefix in prefixes):
            mounts.append(mountpoint)
    return sorted(mounts, key=len, reverse=True)


def _unmount(mountpoint: str) -> None:
    if subprocess.run(["umount", mountpoint], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", mountpoint], capture_output=True)


def _remove_pod_logs(pods_dir: Path) -> None:
    """kubelet 1.20 always logs pods to /var/log/pods/<ns>_<name>_<uid>; remove those of our pods."""
    uids = {p.name for p in pods_dir.iterdir()} if pods_dir.exists() else set()
    for log_dir in Path("/var/log/pods").glob("*_*_*"):
        if log_dir.name.rsplit("_", 1)[1] in uids:
            shutil.rmtree(log_dir, ignore_errors=True)
    for link in Path("/var/log/containers").glob("*.log"):
        if link.is_symlink() and not link.exists():  # pointed into a log dir removed above
            link.unlink()


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localsite.cluster", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a cluster and keep it running until Ctrl-C or SIGTERM")
    up.add_argument("workdir", type=Path)
    up.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="node label (repeatable)")
    commands.add_parser("down", help="tear down a cluster left behind by a crashed run")
    args = parser.parse_args(argv)

    if args.command == "down":
        teardown()
        return
    labels = dict(label.split("=", 1) for label in args.label)
    # SIGTERM ends the wait like Ctrl-C does, so teardown runs either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with running_cluster(args.workdir, node_labels=labels) as cluster:
        print(f"kubeconfig: {cluster.kubeconfig}\nregistry:   {cluster.registry}\nCtrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
