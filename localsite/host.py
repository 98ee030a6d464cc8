"""Debian 12 test hosts with systemd as PID 1 and sshd: the machines a site is deployed to.

A host is a systemd-nspawn container booted from a cached debootstrap root file system. It lives
in its own network namespace `ark-host-N`, joined to the machine by one veth pair (machine side
10.213.N.1/30, host address 10.213.N.2) or plugged into a LAN shared with other hosts (host
address 10.213.L.N, see localsite.netns.Lan), and in its own cgroup `ark-host-N` below this
process's cgroup in every hierarchy. Like a freshly installed machine, each host has SSH host
keys of its own and lets root log in with the admin's key (admin_ssh_key); the product reaches it
over SSH only. The tests also look inside with nsenter into the host's systemd.

Cached, built once per machine and reused by every host:
  /var/cache/ark/hosts/base-vBASE_VERSION   the debootstrap root (a few minutes to build)
  /var/cache/ark/ssh/id_ed25519             the admin's SSH key
Per host: WORKDIR/root, a copy of the base (seconds), removed at shutdown; WORKDIR/nspawn.log
keeps the host's console output.

Shutdown stops only what this code started: the host's systemd powers off, and whatever is left
is killed by PID from the host's own cgroup.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ark.machineimage import debootstrap
from localsite.netns import Lan, Netns
from localsite.processes import stop

# Bump when BASE_PACKAGES or ark.machineimage.debootstrap change, so a stale cached root is not reused.
BASE_VERSION = "2"
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "procps", "python3", "python3-venv", "ca-certificates",
    "openssh-server",
)
HOST_CACHE = Path("/var/cache/ark/hosts")
# The site admin's SSH key for the test hosts: root may log in with it, as on a freshly
# installed machine the admin is given.
SSH_KEY = Path("/var/cache/ark/ssh/id_ed25519")
# Relaxed enough for containerd, runc and kubelet to run nested inside the host (field notes).
SYSCALL_FILTER = (
    "@system-service @mount @privileged @raw-io @clock @module @reboot @swap @obsolete @cpu-emulation"
    " keyctl bpf add_key"
)
# Commands inside get this environment, not ours (pyenv, pip and virtualenv variables).
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
CGROUP_MOUNTS = Path("/sys/fs/cgroup")

Progress = Callable[[str], None]


class HostBootError(RuntimeError):
    """The host did not come up; the message quotes the tail of its console log."""


class HostCommandError(RuntimeError):
    """A command inside a host failed; the message quotes the tail of its output."""


@dataclass
class Host:
    name: str  # also its hostname
    workdir: Path
    root: Path  # the host's root directory; files written here are visible inside at once
    netns: Netns
    cgroup: str  # the host's cgroup, relative to this process's cgroup in each hierarchy
    nspawn: subprocess.Popen[bytes]
    init_pid: int = 0  # the host's systemd, as a PID of this machine

    @property
    def address(self) -> str:
        return self.netns.node_ip

    @property
    def ssh_host_key(self) -> str:
        """The host's SSH host key ("ssh-ed25519 AAAA..."), as a site admin would note it down."""
        return " ".join((self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])

    def cgroup_dirs(self) -> list[Path]:
        return list(_own_cgroup_dirs(self.cgroup).values())

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the host: in all its namespaces, its root and working directory."""
        env = [f"{key}={value}" for key, value in HOST_ENV.items()]
        return ["nsenter", "-t", str(self.init_pid), "-a", "--", "/usr/bin/env", "-i", *env, *argv]

    def run(
        self, *argv: str, check: bool = False, input: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the host; with check, a failure raises CalledProcessError (with stderr)."""
        return subprocess.run(
            self.command(argv),
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def output(self, *argv: str, input: str | None = None, timeout: float | None = None) -> str:
        """The stdout of `argv` run inside the host; HostCommandError, quoting its output, if it fails."""
        result = self.run(*argv, input=input, timeout=timeout)
        if result.returncode != 0:
            raise HostCommandError(f"{shlex.join(argv)} on {self.name} exited {result.returncode}: "
                                   f"{(result.stdout[-1000:] + result.stderr[-2000:]).strip()}")
        return result.stdout

    def runtime_dropin(self, unit: str, name: str, text: str | None) -> None:
        """Write the systemd drop-in `name` of `unit` under /run (gone at the host's next boot), or
        remove it (text None), and reload systemd; the unit restarts when the caller says. Written
        from inside: the host's /run is a tmpfs of its own."""
        path = f"/run/systemd/system/{unit}.d/{name}.conf"
        if text is None:
            self.output("rm", "-f", path, timeout=30)
        else:
            self.output("sh", "-c", 'mkdir -p "${1%/*}" && cat > "$1"', "sh", path, input=text, timeout=30)
        self.output("systemctl", "daemon-reload", timeout=120)

    def testinfra(self) -> Any:
        """A testinfra Host whose commands run inside this host: host.service("x").is_running etc."""
        # Imported here: testinfra is a test dependency, and the site bring-up also uses this module.
        import testinfra.host
        from testinfra.backend.base import BaseBackend

        wrapper = shlex.join(self.command(["/bin/sh", "-c"]))

        class NsenterBackend(BaseBackend):  # testinfra's local backend, commands wrapped by nsenter
            def run(self, command: str, *args: str, **kwargs: Any) -> Any:
                cmd = self.get_command(command, *args)
                out = self.run_local(f"{wrapper} %s", cmd)
                out.command = self.encode(cmd)
                return out

        backend = NsenterBackend(self.name)
        infra = testinfra.host.Host(backend)
        backend.set_host(infra)
        return infra


# --- cached artifacts ------------------------------------------------------------------------


def base_image(progress: Progress = print) -> Path:
    """The cached root file system every host is copied from; built with debootstrap on first use."""
    image = HOST_CACHE / f"base-v{BASE_VERSION}"
    if image.is_dir():
        return image
    progress(f"==> building the test host base image {image} (debootstrap, a few minutes, once)")
    building = image.with_name(f"{image.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    debootstrap(building, BASE_PACKAGES, progress)
    _publish(building, image)
    return image


def _publish(built: Path, target: Path) -> None:
    """Move a finished build into place; if a concurrent build got there first, keep theirs."""
    try:
        built.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(built)


def admin_ssh_key() -> Path:
    """The private key this machine logs in to every test host with, as root (made once)."""
    key = SSH_KEY
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(dir=key.parent) as tmp:
            made = Path(tmp) / key.name
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ark-test-admin", "-f", str(made)])
            with contextlib.suppress(FileExistsError):  # a concurrent run made its key first: that one it is
                os.link(made, key)
    public = key.with_suffix(".pub")
    if not public.exists():
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
        public.write_text(derived.stdout)
    return key


def authorize_admin_key(root: Path) -> None:
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(admin_ssh_key().with_suffix(".pub").read_text())
    authorized.chmod(0o600)


# --- boot and shutdown -----------------------------------------------------------------------


def boot_host(
    name: str,
    workdir: Path,
    *,
    index: int = 1,
    lan: Lan | None = None,
    binds: Sequence[str] = (),
    progress: Progress = print,
    timeout: float = 120.0,
) -> Host:
    """Boot a host and return once its systemd reports running (or degraded).

    `index` (1-199) picks the network namespace ark-host-INDEX and the address 10.213.INDEX.2, or
    10.213.L.INDEX on `lan`; hosts that run at the same time need different indexes. `binds` are
    extra systemd-nspawn --bind values (SRC[:DEST[:OPTIONS]]). On failure everything started so
    far is undone.
    """
    if not 1 <= index <= 199:
        raise ValueError(f"host index must be 1..199: {index}")
    workdir = workdir.resolve()
    base = base_image(progress)
    netns = _netns(index, lan)
    root = workdir / "root"
    if root.exists():
        raise RuntimeError(f"{root} exists: a host from an earlier run? remove it first")
    if netns.exists():
        raise RuntimeError(
            f"network namespace {netns.name} exists: host {index} is running or was left behind by a crashed "
            f"run; clean up with: python -m localsite.host clean {index}"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    progress(f"==> booting test host {name} ({netns.node_ip}, netns {netns.name})")
    started = time.monotonic()
    _run(["cp", "--reflink=auto", "-a", str(base), str(root)])
    # systemd sets the hostname from it.
    (root / "etc/hostname").write_text(f"{name}\n")
    # minbase has no /etc/hosts; Debian's installer writes this much.
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _run(["ssh-keygen", "-A", "-f", str(root)])
    authorize_admin_key(root)
    cgroup = netns.name
    try:
        netns.create(lan)
        # nspawn mounts the host's /proc/sys read-only, and a worker's pod bridge needs forwarding
        # on (the node formula checks it). The setting belongs to the host's own network
        # namespace, so setting it from here touches nothing else.
        _run(["ip", "netns", "exec", netns.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        _make_cgroup(cgroup)
        with (workdir / "nspawn.log").open("wb") as log:
            nspawn = subprocess.Popen(
                _nspawn_argv(name, root, netns, cgroup, binds),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Joined before exec, so the host's systemd and all its services land in the cgroup.
                preexec_fn=lambda: _join_cgroup(cgroup),
                start_new_session=True,  # a Ctrl-C meant for the caller must not skip the clean shutdown
            )
    except BaseException:
        _remove_cgroup(cgroup)
        netns.delete()
        shutil.rmtree(root)
        raise
    host = Host(name=name, workdir=workdir, root=root, netns=netns, cgroup=cgroup, nspawn=nspawn)
    try:
        _wait_for_boot(host, timeout)
    except BaseException:
        shutdown_host(host, progress)
        raise
    progress(f"==> test host {name} up in {time.monotonic() - started:.1f} s")
    return host


def _netns(index: int, lan: Lan | None = None) -> Netns:
    if lan:
        if index == 1:
            raise ValueError(f"host index 1 is the machine's own address on LAN {lan.index}")
        return Netns(name=f"ark-host-{index}", host_if=f"ark-host{index}", host_ip=lan.host_ip,
                     node_ip=lan.address(index), prefix_len=lan.prefix_len)
    return Netns(
        name=f"ark-host-{index}",
        host_if=f"ark-host{index}",
        host_ip=f"10.213.{index}.1",
        node_ip=f"10.213.{index}.2",
        prefix_len=30,
    )


def _nspawn_argv(name: str, root: Path, netns: Netns, cgroup: str, binds: Sequence[str]) -> list[str]:
    return [
        "systemd-nspawn",
        f"--directory={root}",
        f"--machine={name}",
        "--boot",
        # No machined and no scope unit: this machine has no systemd to register with.
        "--register=no",
        "--keep-unit",
        # nspawn moves the container into the namespace itself and stays in ours: under
        # `ip netns exec` it would see a fresh /sys without the cgroup hierarchies bound below.
        f"--network-namespace-path={netns.path}",
        "--console=pipe",
        "--capability=all",
        f"--system-call-filter={SYSCALL_FILTER}",
        # containerd and kubelet inside need writable cgroup hierarchies and the kernel log.
        f"--tmpfs={CGROUP_MOUNTS}:mode=755",
        *(f"--bind={own}:{CGROUP_MOUNTS / hierarchy}" for hierarchy, own in _own_cgroup_dirs(cgroup).items()),
        "--bind=/dev/kmsg",
        # FUSE, as a real host has it: the GlusterFS client mounts the shared session directory.
        "--bind=/dev/fuse",
        *(f"--bind={bind}" for bind in binds),
    ]


def _wait_for_boot(host: Host, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = "not started"
    while time.monotonic() < deadline:
        if host.nspawn.poll() is not None:
            raise HostBootError(f"systemd-nspawn exited with {host.nspawn.returncode}:\n{_tail(host)}")
        host.init_pid = host.init_pid or _container_init(host.nspawn.pid)
        if host.init_pid:
            state = host.run("systemctl", "is-system-running").stdout.strip() or state
            if state in ("running", "degraded"):
                return
        time.sleep(0.2)
    raise HostBootError(f"host {host.name} not up after {timeout:.0f} s (systemd: {state}):\n{_tail(host)}")


def _container_init(nspawn_pid: int) -> int:
    """The PID of the container's PID 1: the child of nspawn that is PID 1 in its own namespace."""
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                    return int(pid)
    return 0


def _tail(host: Host, lines: int = 30) -> str:
    log = host.workdir / "nspawn.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def shutdown_host(host: Host, progress: Progress = print, timeout: float = 60.0) -> None:
    """Power the host off and remove every trace of it but WORKDIR/nspawn.log."""
    progress(f"==> shutting down test host {host.name}")
    if host.init_pid and host.nspawn.poll() is None:
        host.run("systemctl", "poweroff", "--no-block")
    try:
        host.nspawn.wait(timeout)
    except subprocess.TimeoutExpired:
        # nspawn turns SIGTERM into a clean poweroff request to the host's systemd.
        stop(host.nspawn)
    _kill_cgroup(host.cgroup)
    _remove_cgroup(host.cgroup)
    host.netns.delete()
    # nspawn mounts only in its own namespace, but a caller's mount below the root would
    # otherwise let rmtree delete into its source.
    for mountpoint in _mounts_under(host.root):
        subprocess.run(["umount", "--lazy", mountpoint], check=True)
    shutil.rmtree(host.root, ignore_errors=True)


def clean(index: int, progress: Progress = print) -> None:
    """Remove what a crashed run left of host INDEX: its processes, cgroup and network namespace.

    Its root directory stays (only the crashed caller knew where it was)."""
    netns = _netns(index)
    progress(f"==> cleaning up test host {index}: processes in cgroup {netns.name}, netns {netns.name}")
    _kill_cgroup(netns.name)
    _remove_cgroup(netns.name)
    netns.delete()


@contextlib.contextmanager
def running_host(name: str, workdir: Path, **options: Any) -> Iterator[Host]:
    """`with running_host("aio", path) as host:` -- boot_host's options, shutdown on exit."""
    host = boot_host(name, workdir, **options)
    try:
        yield host
    finally:
        shutdown_host(host, progress=options.get("progress", print))


# --- kernel settings a nested kubelet needs ----------------------------------------------------
# kubelet sets these machine-wide values at start (its "kernel defaults") and exits if it cannot.
# Inside a host /proc/sys is read-only, so the machine sets them before a worker host's kubelet
# starts and puts its own values back afterwards.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@contextlib.contextmanager
def kubelet_sysctls() -> Iterator[None]:
    """`with kubelet_sysctls():` the machine's kernel settings as kubelet wants them, restored on exit."""
    proc_sys = Path("/proc/sys")
    saved = {name: (proc_sys / name).read_text().strip() for name in KUBELET_SYSCTLS}
    try:
        for name, value in KUBELET_SYSCTLS.items():
            (proc_sys / name).write_text(value + "\n")
        yield
    finally:
        for name, value in saved.items():
            (proc_sys / name).write_text(value + "\n")


# --- cgroups ---------------------------------------------------------------------------------
# Each host gets a cgroup of its own below ours in every hierarchy, bound over the host's
# /sys/fs/cgroup/HIERARCHY, so its systemd (and a nested kubelet) take it for the root. Binding the
# machine's whole /sys/fs/cgroup, as in the field notes, put every host's init.scope and
# system.slice at the machine's top level, shared between hosts and outside our memory cgroup.
# The cgroup also tells shutdown which processes are left.


def _own_cgroup_dirs(name: str) -> dict[str, Path]:
    """`name` below this process's cgroup in every mounted hierarchy, by hierarchy (e.g. "memory")."""
    own = {}  # controllers ("" for cgroup2) -> this process's path in that hierarchy
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[frozenset(controllers.split(",")) - {""}] = path
    dirs = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype, mountpoint, super_options = fields[-3], fields[4], fields[-1].split(",")
        if fstype not in ("cgroup", "cgroup2") or not mountpoint.startswith(f"{CGROUP_MOUNTS}/"):
            continue
        for controllers, path in own.items():
            if (fstype == "cgroup2") == (not controllers) and controllers <= set(super_options):
                dirs[Path(mountpoint).name] = Path(mountpoint + path.rstrip("/")) / name
                break
    return dirs


def _make_cgroup(name: str) -> None:
    for directory in _own_cgroup_dirs(name).values():
        directory.mkdir(exist_ok=True)
        # A new v1 cpuset starts with no CPUs and memory nodes, and joining it fails (ENOSPC).
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (directory / setting).exists():
                (directory / setting).write_text((directory.parent / setting).read_text())


def _join_cgroup(name: str) -> None:
    for directory in _own_cgroup_dirs(name).values():
        (directory / "cgroup.procs").write_text(str(os.getpid()))


def _cgroup_pids(name: str) -> set[int]:
    pids = set()
    for directory in _own_cgroup_dirs(name).values():
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def _kill_cgroup(name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    if pids:
        raise RuntimeError(f"processes in cgroup {name} survived SIGKILL: {sorted(pids)}")


def _remove_cgroup(name: str) -> None:
    for directory in _own_cgroup_dirs(name).values():
        if directory.is_dir():
            # Deepest first: a cgroup directory can only be removed once it has no children.
            for child in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                child.rmdir()
            directory.rmdir()


def _mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory` in this mount namespace, deepest first."""
    prefix = f"{directory}/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4].encode().decode("unicode_escape")
        if (mountpoint + "/").startswith(prefix):
            mounts.append(mountpoint)
    return sorted(mounts, key=len, reverse=True)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise RuntimeError(f"{argv[0]} failed (exit {result.returncode}):\n{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localsite.host", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    clean_parser = commands.add_parser("clean", help="remove what a crashed run left of a test host")
    clean_parser.add_argument("index", type=int, help="the host's index (its netns is ark-host-INDEX)")
    args = parser.parse_args()
    clean(args.index)


if __name__ == "__main__":
    main()
