"""A real ARC A-REX 6.17 on this machine, confined to one work directory.

ARK's tests, demo and benchmark need a genuine ARC compute element in front of
the Kubernetes LRMS backend, driven by the genuine ARC client.  This module:

* builds everything A-REX needs inside a caller-owned work dir: arc.conf,
  control/session/tmp/run/log dirs, a private test CA with host and user
  certificates, RTE scripts and an ``ARC_LOCATION`` tree that mirrors /usr, so
  LRMS scripts can be added without writing into /usr/share/arc;
* starts the two daemons (``arc-arex-start`` = job manager + infoprovider,
  ``arc-arex-ws-start`` = REST) and stops exactly the processes it started;
* wraps arcsub/arcstat/arcget/arckill in :class:`ArcClient`.

Nothing is written to /etc: ``arcctl`` runs config-less (``ARC_CONFIG`` points
at a non-existent file), so it neither reads /etc/arc.conf nor refreshes its
parsed-config cache in /run/arc.  The only system-wide change is the mapped
unix account (A-REX refuses to run jobs as root), created once and kept.
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .users import ensure_user

USR = Path("/usr")
HOSTNAME = "localhost"  # name the client dials; the host cert is issued for it
USER_DN_CN = "ARK Test User"
# A-REX closes every fd up to the limit on each fork: keep the limit modest.
NOFILE_LIMIT = 65536
# Seconds between infoprovider runs.  arcstat reads job state from what the
# infoprovider wrote, so this bounds how stale the state seen by users is.  Each
# run costs ~0.7 s of Perl CPU, so shorter periods load the machine noticeably.
INFOPROVIDER_PERIOD = 5.0
# A-REX's own job-processing poll period ([arex] wakeupperiod, default 180 s).
AREX_WAKEUP_PERIOD = 5
# Marker put in the daemons' environment; every process A-REX spawns (scan,
# infoprovider, fork jobs that re-parent to init) inherits it, which lets
# stop_arex find them all.
MARKER_VAR = "ARK_LOCALSITE_AREX"

Progress = Callable[[str], None]


class ArexError(RuntimeError):
    """A-REX could not be set up, started or stopped, or an ARC client command failed."""


@dataclass
class Arex:
    """A running A-REX; every path lives under ``workdir``."""

    workdir: Path
    config: Path  # arc.conf
    controldir: Path
    sessiondir: Path
    endpoint: str  # https://localhost:PORT/arex, for arcsub -C
    arc_location: Path  # ARC_LOCATION tree; LRMS scripts go into share/arc
    unix_user: str
    uid: int
    gid: int
    port: int
    ca_dir: Path  # X509_CERT_DIR for clients
    user_cert: Path
    user_key: Path
    user_dn: str
    logdir: Path
    marker: str  # value of MARKER_VAR in every process this A-REX started
    # The two arched processes (job manager, REST), run in the foreground as our
    # children: we know their PIDs without pid-file races and reap them on stop.
    daemons: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def client(self) -> "ArcClient":
        """An ARC client with its own proxy, config and job list in the work dir."""
        return ArcClient.create(self)


# --------------------------------------------------------------------------
# Set-up helpers
# --------------------------------------------------------------------------


def _run(cmd: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
         timeout: float = 120) -> str:
    """Run a set-up command; on failure raise with its output (for a readable test error)."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ArexError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def _check_traversable(path: Path) -> None:
    """The mapped user runs submit/cancel scripts that read the work dir: every ancestor
    must be world-searchable (pytest's /tmp/pytest-of-root is 0700, for instance)."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            raise ArexError(f"{parent} is not searchable by other users; the mapped job user "
                            f"could not reach {path}. Use a work dir under e.g. /var/tmp.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_arc_location(root: Path, extra_files: Mapping[str, Path],
                       period: float = INFOPROVIDER_PERIOD) -> None:
    """Make ``root`` an ARC_LOCATION for A-REX: a mirror of /usr made of symlinks, where
    share/arc is a real directory (one symlink per file) holding ``extra_files`` too
    (name relative to share/arc -> source file, copied).  Copies, not links: the
    mapped user must read them, and the caller's files may sit under 0700 /root.

    The two start scripts are copied and patched:

    * the REST listener gets <tcp:Interface>127.0.0.1</tcp:Interface> (6.17's arc.conf
      has no listen address, the packaged script binds every interface);
    * both A-REX service elements get <arex:InfoproviderWakeupPeriod> (no arc.conf key).
      Measured on 6.17: its unit is 0.1 s (5 gives a run about every second, 50 about
      every 5.5 s; the default is about a minute).
    """
    root.mkdir(parents=True, exist_ok=True)
    for entry in USR.iterdir():
        if entry.name != "share":
            (root / entry.name).symlink_to(entry)
    share = root / "share"
    share.mkdir()
    for entry in (USR / "share").iterdir():
        if entry.name != "arc":
            (share / entry.name).symlink_to(entry)
    arcshare = share / "arc"
    arcshare.mkdir()
    for entry in (USR / "share" / "arc").iterdir():
        (arcshare / entry.name).symlink_to(entry)

    deciseconds = max(1, round(period * 10))
    period_xml = f"<arex:InfoproviderWakeupPeriod>{deciseconds}</arex:InfoproviderWakeupPeriod>"
    gmconfig = "<arex:gmconfig>$ARC_RUNTIME_CONFIG</arex:gmconfig>"
    listen = "<tcp:Listen><tcp:Port>$arex_port</tcp:Port></tcp:Listen>"
    patches = {
        "arc-arex-start": [(gmconfig, gmconfig + period_xml)],
        "arc-arex-ws-start": [
            (gmconfig, gmconfig + period_xml),
            (listen, "<tcp:Listen><tcp:Interface>127.0.0.1</tcp:Interface>"
                     "<tcp:Port>$arex_port</tcp:Port></tcp:Listen>"),
        ],
    }
    for script, replacements in patches.items():
        text = (USR / "share" / "arc" / script).read_text()
        for old, new in replacements:
            if old not in text:  # a different ARC version: fail loudly, not silently
                raise ArexError(f"cannot patch {script}: {old!r} not found")
            text = text.replace(old, new)
        target = arcshare / script
        target.unlink()
        target.write_text(text)
        target.chmod(0o755)

    for name, src in extra_files.items():
        target = arcshare / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copy2(src, target)
        target.chmod(0o755 if os.access(src, os.X_OK) else 0o644)


def _make_certificates(certdir: Path, ca_dir: Path) -> tuple[Path, Path, Path, Path]:
    """A private test CA plus host (localhost) and user certificates, via arcctl.

    ARC_CONFIG names a missing file so arcctl runs config-less: otherwise it parses
    /etc/arc.conf (or ours) and rewrites its cache /run/arc/arcctl.runtime.conf."""
    env = {**os.environ, "ARC_CONFIG": str(certdir / "no-arc.conf")}
    arcctl = ["arcctl", "test-ca", "--ca-dir", str(ca_dir), "--ca-id", "ark"]
    _run([*arcctl, "init"], cwd=certdir, env=env)
    _run([*arcctl, "hostcert", "-n", HOSTNAME], cwd=certdir, env=env)
    _run([*arcctl, "usercert", "-n", USER_DN_CN, "--no-auth"], cwd=certdir, env=env)
    # arcctl names the files after the host / user; give them stable names.
    user = USER_DN_CN.replace(" ", "-")
    names = {"hostcert.pem": f"host-{HOSTNAME}-cert.pem", "hostkey.pem": f"host-{HOSTNAME}-key.pem",
             "usercert.pem": f"client-{user}-cert.pem", "userkey.pem": f"client-{user}-key.pem"}
    for new, old in names.items():
        (certdir / old).rename(certdir / new)
    (certdir / "userkey.pem").chmod(0o600)
    (certdir / "hostkey.pem").chmod(0o600)
    return (certdir / "hostcert.pem", certdir / "hostkey.pem",
            certdir / "usercert.pem", certdir / "userkey.pem")


def _subject(cert: Path) -> str:
    """The certificate subject in the /A=b/C=d form ARC matches against."""
    out = _run(["openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-in", str(cert)])
    return out.strip().removeprefix("subject=").strip()


# pidfile matters beyond the PID: the start scripts put the parsed runtime config
# (the --config every LRMS script gets) next to it, as <pidfile minus .pid>.cfg.
def _arc_conf(*, w: dict[str, Path], port: int, lrms: str, custom: Mapping[str, str],
              queues: Iterable[str], unix_user: str, group: str, host_cert: Path,
              host_key: Path, ca_dir: Path, allowed: Path) -> str:
    custom_block = "".join(f"{k} = {v}\n" for k, v in custom.items())
    queue_blocks = "".join(f"[queue:{q}]\n\n" for q in queues)
    return f"""\
# Generated by localsite/arex.py for ARK tests: everything below {w['root']}.
[common]
hostname = {HOSTNAME}
x509_host_key = {host_key}
x509_host_cert = {host_cert}
x509_cert_dir = {ca_dir}

[authgroup:ark]
file = {allowed}

[mapping]
map_to_user = ark {unix_user}:{group}
policy_on_nomap = stop

[lrms]
lrms = {lrms}

[custom:{lrms}]
{custom_block}
[arex]
controldir = {w['control']}
sessiondir = {w['session']}
runtimedir = {w['rte']}
tmpdir = {w['tmp']}
pidfile = {w['run']}/arched-arex.pid
logfile = {w['log']}/arex.log
joblog = {w['log']}/arex-jobs.log
helperlog = {w['log']}/job.helper.errors
wakeupperiod = {AREX_WAKEUP_PERIOD}
loglevel = 3

[arex/ws]
wsurl = https://{HOSTNAME}:{port}/arex
logfile = {w['log']}/ws-interface.log
pidfile = {w['run']}/arched-arex-ws.pid

[arex/ws/jobs]
allowaccess = ark

[infosys]
logfile = {w['log']}/infoprovider.log

[infosys/glue2]

[infosys/cluster]

{queue_blocks}"""


def _install_rtes(rtedir: Path, controldir: Path, rtes: Mapping[str, str]) -> None:
    """Write RTE scripts into [arex] runtimedir and enable them the way `arcctl rte
    enable` does: a symlink in controldir/rte/enabled/<name>."""
    for name, script in rtes.items():
        path = rtedir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script if script.endswith("\n") else script + "\n")
        path.chmod(0o755)
        link = controldir / "rte" / "enabled" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)


# --------------------------------------------------------------------------
# Daemons
# --------------------------------------------------------------------------


def _limit_nofile() -> None:
    """preexec_fn for the daemons: a sane open-files limit (see NOFILE_LIMIT)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = NOFILE_LIMIT if hard == resource.RLIM_INFINITY else min(hard, NOFILE_LIMIT)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _daemon_env(arex_location: Path, config: Path, marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "ARC_"))}
    env |= {"ARC_LOCATION": str(arex_location), "ARC_CONFIG": str(config), MARKER_VAR: marker,
            # Scripts run as the mapped user; a pyenv python under /root is unreadable.
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    return env


def _start_daemon(arex: Arex, script: str) -> subprocess.Popen:
    """Run a packaged start script from our tree with -f: after validating the config
    it execs arched in the foreground, so the child's PID is arched's."""
    env = _daemon_env(arex.arc_location, arex.config, arex.marker)
    with open(arex.logdir / f"{script}.out", "ab") as out:
        return subprocess.Popen([str(arex.arc_location / "share" / "arc" / script), "-f"],
                                env=env, cwd=arex.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_limit_nofile)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _rest_ready(arex: Arex) -> bool:
    """True once REST answers /rest/1.0/info with the CE's GLUE2 document: only then can
    arcsub pick a resource (it aborts while the infoprovider has written nothing)."""
    ctx = ssl.create_default_context(cafile=None, capath=str(arex.ca_dir))
    ctx.load_cert_chain(arex.user_cert, arex.user_key)
    conn = http.client.HTTPSConnection(HOSTNAME, arex.port, context=ctx, timeout=5)
    try:
        conn.request("GET", "/arex/rest/1.0/info", headers={"Accept": "text/xml"})
        resp = conn.getresponse()
        return resp.status == 200 and b"ComputingService" in resp.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _marked_pids(marker: str) -> set[int]:
    """PIDs of live processes whose environment carries our marker, i.e. that descend from
    the daemons we started, even after re-parenting to init (fork jobs, nohup'ed helpers)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
    found.discard(os.getpid())
    return {pid for pid in found if _alive(pid)}


def _wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    left = set(pids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid for pid in left if _alive(pid)}
    return left


def stop_arex(arex: Arex, progress: Progress = print) -> None:
    """Stop the daemons we started (SIGTERM, then SIGKILL), then every remaining
    process carrying our environment marker (scan-*-job, infoprovider, fork jobs)."""
    for proc in arex.daemons:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    for proc in arex.daemons:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in _marked_pids(arex.marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(_marked_pids(arex.marker), 10)
    if left:
        raise ArexError(f"processes of {arex.workdir} survived SIGKILL: {sorted(left)}")
    progress(f"arex: stopped ({arex.workdir})")


def start_arex(
    workdir: Path,
    *,
    lrms: str = "fork",
    custom: Mapping[str, str] | None = None,
    queues: Iterable[str] = ("default",),
    rtes: Mapping[str, str] | None = None,
    extra_lrms_files: Mapping[str, Path] | None = None,
    unix_user: str = "arkuser",
    uid: int = 20001,
    infoprovider_period: float = INFOPROVIDER_PERIOD,
    ready_timeout: float = 120,
    progress: Progress = print,
) -> Arex:
    """Configure and start A-REX + its REST service under ``workdir`` (created, must be
    empty or absent); return once REST serves the CE's information.

    ``extra_lrms_files`` maps file names to files copied into ARC_LOCATION/share/arc
    (e.g. submit-kubernetes-job, KUBERNETESmod.pm) before the daemons start; the
    submit script for ``lrms`` must be there, or the configuration check fails.
    """
    t0 = time.monotonic()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise ArexError(f"work dir {workdir} is not empty")
    workdir.chmod(0o755)
    _check_traversable(workdir)
    uid, gid = ensure_user(unix_user, uid)
    group = grp.getgrgid(gid).gr_name

    w = {name: workdir / name for name in
         ("control", "session", "rte", "tmp", "run", "log", "certs", "arc")}
    w["root"] = workdir
    for name in ("control", "session", "rte", "tmp", "run", "log", "certs"):
        w[name].mkdir(mode=0o755)
    w["tmp"].chmod(0o1777)  # A-REX requires a world-writable sticky tmpdir
    ca_dir = w["certs"] / "ca"

    build_arc_location(w["arc"], extra_lrms_files or {}, infoprovider_period)
    if not (w["arc"] / "share" / "arc" / f"submit-{lrms}-job").exists():
        raise ArexError(f"no submit-{lrms}-job in /usr/share/arc or extra_lrms_files")
    host_cert, host_key, user_cert, user_key = _make_certificates(w["certs"], ca_dir)
    user_dn = _subject(user_cert)
    allowed = w["certs"] / "allowed-subjects"
    allowed.write_text(f'"{user_dn}"\n')
    _install_rtes(w["rte"], w["control"], rtes or {})
    # Without this, arc-arex-ws-start spends minutes in `openssl dhparam 4096`.
    _run(["openssl", "dhparam", "-dsaparam", "-out", str(w["control"] / "dhparam.pem"), "2048"])
    (w["control"] / "dhparam.pem").chmod(0o600)

    port = _free_port()
    config = workdir / "arc.conf"
    config.write_text(_arc_conf(w=w, port=port, lrms=lrms, custom=custom or {}, queues=queues,
                                unix_user=unix_user, group=group, host_cert=host_cert,
                                host_key=host_key, ca_dir=ca_dir, allowed=allowed))
    arex = Arex(workdir=workdir, config=config, controldir=w["control"], sessiondir=w["session"],
                endpoint=f"https://{HOSTNAME}:{port}/arex", arc_location=w["arc"],
                unix_user=unix_user, uid=uid, gid=gid, port=port, ca_dir=ca_dir,
                user_cert=user_cert, user_key=user_key, user_dn=user_dn, logdir=w["log"],
                marker=uuid.uuid4().hex)
    progress(f"arex: configured in {time.monotonic() - t0:.1f}s, starting on {arex.endpoint}")
    try:
        for script in ("arc-arex-start", "arc-arex-ws-start"):
            arex.daemons.append(_start_daemon(arex, script))
        deadline = time.monotonic() + ready_timeout
        while not _rest_ready(arex):
            if time.monotonic() > deadline:
                # Usually the infoprovider failing, e.g. no or a broken <LRMS>mod.pm
                # ("No ARC0 module for ..."): show its last words.
                log = arex.logdir / "infoprovider.log"
                lines = log.read_text(errors="replace").splitlines() if log.exists() else []
                tail = "\n".join(lines[-5:])
                raise ArexError(f"REST endpoint {arex.endpoint} not ready after "
                                f"{ready_timeout}s; see {arex.logdir}. infoprovider.log:\n{tail}")
            for proc in arex.daemons:
                if proc.poll() is not None:
                    out = (arex.logdir / f"{Path(proc.args[0]).name}.out").read_text()
                    raise ArexError(f"{proc.args[0]} exited {proc.returncode} during start-up:"
                                    f"\n{out}\nSee also {arex.logdir}")
            time.sleep(0.5)
    except BaseException:
        stop_arex(arex, progress)
        raise
    progress(f"arex: ready in {time.monotonic() - t0:.1f}s")
    return arex


@contextlib.contextmanager
def running_arex(workdir: Path, **kwargs: Any) -> Iterator[Arex]:
    """start_arex(...) for the duration of a with-block; always stopped afterwards."""
    arex = start_arex(workdir, **kwargs)
    try:
        yield arex
    finally:
        stop_arex(arex, kwargs.get("progress", print))


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------

FINAL_STATES = frozenset({"Finished", "Failed", "Killed", "Deleted"})


@dataclass
class ArcClient:
    """The real ARC command-line client, isolated in ``<workdir>/client``: its own
    client.conf, proxy, job list and HOME (so ~/.arc is never read or created)."""

    endpoint: str
    home: Path
    conffile: Path
    joblist: Path
    proxy: Path
    env: dict[str, str] = field(repr=False)

    @classmethod
    def create(cls, arex: Arex) -> "ArcClient":
        home = arex.workdir / "client"
        home.mkdir(exist_ok=True)
        proxy, joblist, conffile = home / "proxy.pem", home / "jobs.dat", home / "client.conf"
        conffile.write_text(
            "[common]\n"
            f"proxypath = {proxy}\n"
            f"certificatepath = {arex.user_cert}\n"
            f"keypath = {arex.user_key}\n"
            f"cacertificatesdirectory = {arex.ca_dir}\n"
            "timeout = 60\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "ARC_"))}
        env |= {"HOME": str(home), "X509_USER_PROXY": str(proxy),
                "X509_CERT_DIR": str(arex.ca_dir), "X509_USER_CERT": str(arex.user_cert),
                "X509_USER_KEY": str(arex.user_key)}
        client = cls(endpoint=arex.endpoint, home=home, conffile=conffile, joblist=joblist,
                     proxy=proxy, env=env)
        client.run("arcproxy", "-z", str(conffile), "-C", str(arex.user_cert),
                   "-K", str(arex.user_key), "-T", str(arex.ca_dir), "-P", str(proxy))
        return client

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        """Run an ARC client command in this client's environment; return stdout+stderr.
        Raises ArexError with the output when it exits non-zero."""
        proc = subprocess.run(list(args), env=self.env, cwd=cwd or self.home, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0:
            raise ArexError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")
        return proc.stdout

    def _arc(self, cmd: str, *args: str, cwd: Path | None = None) -> str:
        return self.run(cmd, "-z", str(self.conffile), "-j", str(self.joblist), *args, cwd=cwd)

    def submit(self, xrsl: str, cwd: Path) -> str:
        """Submit an xRSL job (relative input files resolve against ``cwd``); return its URL."""
        out = self._arc("arcsub", "-C", self.endpoint, "-T", "arcrest", "-e", xrsl, cwd=cwd)
        match = re.search(r"Job submitted with jobid:\s*(\S+)", out)
        if not match:
            raise ArexError(f"arcsub printed no job id:\n{out}")
        return match.group(1)

    def details(self, job_url: str) -> dict[str, str]:
        """`arcstat -l` as a dict (keys as printed, e.g. "State", "Exit Code")."""
        out = self._arc("arcstat", "-l", job_url)
        return {m.group(1): m.group(2).strip()
                for m in re.finditer(r"^\s+([A-Za-z][A-Za-z ]*?):\s*(.*)$", out, re.M)}

    def status(self, job_url: str) -> str:
        """The job's ARC state as arcstat shows it, e.g. "Running" or "Finished";
        "" while the information system has no record of the job yet."""
        out = self._arc("arcstat", job_url)
        match = re.search(r"^\s*State:\s*(\S+)", out, re.M)
        return match.group(1) if match else ""

    def wait(self, job_url: str, states: Iterable[str] = FINAL_STATES,
             timeout: float = 300, poll: float = 1.0) -> str:
        """Poll status until it is one of ``states``; return that state.  Fails at once
        when the job reaches a final state that is not wanted (it cannot leave it)."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.status(job_url)
            if state in wanted:
                return state
            if state in FINAL_STATES:
                raise ArexError(f"{job_url} ended {state}, not {sorted(wanted)}:\n"
                                f"{self._arc('arcstat', '-l', job_url)}")
            time.sleep(poll)
        raise ArexError(f"{job_url} still {state or 'unknown'} after {timeout}s")

    def get(self, job_url: str, download_dir: Path) -> Path:
        """Download the job's outputs (arcget, which also cleans the job); return the dir."""
        download_dir.mkdir(parents=True, exist_ok=True)
        out = self._arc("arcget", "-D", str(download_dir), job_url)
        match = re.search(r"Results stored at:\s*(\S+)", out)
        if not match:
            raise ArexError(f"arcget stored no results:\n{out}")
        return Path(match.group(1))

    def kill(self, job_url: str) -> None:
        self._arc("arckill", job_url)
