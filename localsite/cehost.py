"""The CE host of a site Salt installed, driven the way A-REX drives arkd.

arkd's own tests and its benchmark check arkd's behaviour one piece at a time: A-REX's two services
are stopped through systemd on the CE host, and the caller writes A-REX's control directory as
A-REX does and runs the LRMS client as the mapped users, inside the host, against the arkd,
Kubernetes and accounts that highstate installed. A-REX itself is exercised end to end by the
ARC client (tests/e2e).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from arc_bridge.controldir import ControlDir
from arc_bridge.grami import quote

from .host import Host
from .saltsite import SaltSite, example_pillar

AREX_UNITS = ("arc-arex-ws", "arc-arex")
KUBECTL = ("kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig")
# Where the LRMS scripts run the stdlib-only client from (arc-bridge install-lrms), as A-REX's
# mapped users do: Debian's python3, no site packages.
CLIENT = ("env", "PYTHONPATH=/usr/share/arc/ark", "/usr/bin/python3", "-S", "-P", "-m", "arc_bridge.client")


@dataclass
class GridJob:
    grid_id: str
    user: str
    grami: Path  # paths as this machine sees them; CeHost.inside() gives them as the CE host does
    script: Path
    session: Path


class CeHost:
    """The CE host's arkd, control directory and session root, and ways to act as A-REX or a user."""

    def __init__(self, site: SaltSite):
        self.ce: Host = site.with_role("ce")
        self.control_plane: Host = site.with_role("control-plane")
        # arkd's configuration as highstate wrote it.
        self.config = yaml.safe_load(self.outside("/etc/ark/bridge.yaml").read_text())
        self.socket = self.config["socket"]
        self.controldir = ControlDir(self.outside(self.config["controldir"]))
        (self.sessions,) = (self.outside(root) for root in self.config["session_roots"])
        self.scripts = self.outside("/var/tmp/ark-integration")
        self.scripts.mkdir(exist_ok=True)
        self.node_name = site.plan.with_role("worker").name
        self.registry = f"{site.plan.address(site.plan.with_role('registry').name)}:5000"
        self.jobs: list[GridJob] = []

    def outside(self, path: str) -> Path:
        """A path of the CE host, as this machine sees it."""
        return self.ce.root / path.lstrip("/")

    def inside(self, path: Path) -> str:
        return "/" + str(path.relative_to(self.ce.root))

    def uid(self, user: str) -> int:
        return int(self.ce.run("id", "-u", user, check=True).stdout)

    def systemctl(self, verb: str, *units: str) -> None:
        self.ce.run("systemctl", verb, *units, check=True, timeout=120)

    def start_arkd(self) -> None:
        self.systemctl("start", "arkd")
        deadline = time.monotonic() + 30
        # /run is the host's own tmpfs, out of this machine's sight: ask inside.
        while self.ce.run("test", "-S", self.socket).returncode != 0:
            assert time.monotonic() < deadline, "arkd did not open its socket within 30 s"
            time.sleep(0.1)

    @contextlib.contextmanager
    def arkd_down(self):
        """arkd stopped for the block (what happens meanwhile, it learns of only when it returns)."""
        self.systemctl("stop", "arkd")
        try:
            yield
        finally:
            self.start_arkd()

    def new_job(self, user: str, script: str, **options: str) -> GridJob:
        """Files as A-REX leaves them just before it calls submit-kubernetes-job: ARC 6.17 hands
        the job's control files (grami, .local, status) to the job's user."""
        grid_id = secrets.token_hex(16)
        uid = self.uid(user)
        session = self.sessions / grid_id
        session.mkdir(mode=0o700)
        os.chown(session, uid, uid)
        fields = {"directory": self.inside(session), "gridid": grid_id, "queue": "default",
                  "arg_0": "/bin/sh", "memory": "64", "walltime": "120", **options}
        grami = self.controldir.job_file(grid_id, "grami")
        grami.write_text("".join(f"joboption_{k}={quote(v)}\n" for k, v in fields.items()))
        script_path = self.scripts / f"{grid_id}.sh"
        script_path.write_text(script)
        local = self.controldir.job_file(grid_id, "local")
        local.write_text(f"sessiondir={self.inside(session)}\n")
        status = self.controldir.status_file(grid_id)
        status.write_text("SUBMIT")
        for path in (grami, script_path, local, status):
            os.chown(path, uid, uid)
        job = GridJob(grid_id, user, grami, script_path, session)
        self.jobs.append(job)
        return job

    def as_user(self, user: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A command inside the CE host as a local account (or root), with that account's rights only."""
        uid = self.uid(user) if user != "root" else 0
        prefix = ("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups") if uid else ()
        return self.ce.run(*prefix, *args, timeout=timeout)

    def client(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The stdlib client as the LRMS scripts run it, as the mapped user, inside the CE host."""
        return self.as_user(user, *CLIENT, "--socket", self.socket, *args)

    def submit(self, job: GridJob, user: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self.client(user or job.user, "submit", self.inside(job.grami), self.inside(job.script))
        if result.returncode == 0:
            # What A-REX does after a successful submit (rewriting a file keeps its owner).
            self.controldir.job_file(job.grid_id, "local").write_text(
                f"localid={self.local_id(job)}\nsessiondir={self.inside(job.session)}\n")
            self.controldir.status_file(job.grid_id).write_text("INLRMS")
        return result

    def local_id(self, job: GridJob) -> str:
        lines = [l for l in job.grami.read_text().splitlines() if l.startswith("joboption_jobid=")]
        return lines[-1].split("=", 1)[1] if lines else ""

    def wait_done(self, job: GridJob, timeout: float = 90) -> str:
        done = self.controldir.job_file(job.grid_id, "lrms_done")
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                journal = self.ce.run("journalctl", "--no-pager", "-n", "60", "-u", "arkd").stdout
                raise AssertionError(f"no lrms_done for {job.grid_id} after {timeout} s; arkd's journal:\n{journal}")
            time.sleep(0.1)
        return done.read_text().strip()

    def diag(self, job: GridJob) -> dict[str, str]:
        text = Path(f"{job.session}.diag").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl as the site admin, on the control plane (the CE has no cluster-admin credential)."""
        return self.control_plane.run(*KUBECTL, *args, input=input, timeout=120)

    def k8s_jobs(self) -> list[str]:
        out = self.kubectl("get", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd",
                           "-o", "name").stdout
        return out.split()

    def arc_bridge(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The admin command, from the virtualenv highstate installed it in."""
        return self.ce.run(f"{example_pillar()['bridge']['venv']}/bin/arc-bridge", *args, timeout=60)

    @contextlib.contextmanager
    def standing_in_for_arex(self) -> Iterator[CeHost]:
        """A-REX stopped (through systemd) for the block, so that only the caller writes its
        control directory; then the caller's jobs removed and A-REX started again."""
        self.systemctl("stop", *AREX_UNITS)
        try:
            yield self
        finally:
            try:
                self.remove_jobs()
            finally:
                self.systemctl("start", *reversed(AREX_UNITS))

    def remove_jobs(self) -> None:
        """Everything of this module's jobs, so that A-REX does not find them when it starts again."""
        self.kubectl("delete", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd", "--wait=true")
        for job in self.jobs:
            for path in self.controldir.root.rglob(f"*{job.grid_id}*"):
                path.unlink()
            for path in (job.session, Path(f"{job.session}.diag"), Path(f"{job.session}.comment"), job.script):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
