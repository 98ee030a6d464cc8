"""A real arkd against the real cluster, and a stand-in for the parts of A-REX arkd reads.

A-REX itself is exercised end to end in tests/e2e; here the control directory is written the
way A-REX writes it so that each arkd behaviour can be checked on its own.
"""

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from arc_bridge.controldir import ControlDir
from arc_bridge.grami import quote
from localsite.bridge import Arkd, apply_site_manifests, bridge_config, install_lrms, start_arkd


@dataclass
class GridJob:
    grid_id: str
    user: str
    grami: Path
    script: Path
    session: Path


class Site:
    """One arkd, its control directory and session root, and ways to act as A-REX or a user."""

    def __init__(self, workdir: Path, cluster, users):
        self.workdir, self.cluster, self.users = workdir, cluster, users
        self.client_dir = workdir / "share"
        install_lrms(self.client_dir)
        self.config_path = workdir / "bridge.yaml"
        config = bridge_config(cluster, workdir, {"alpha": ["ark-alice"], "beta": ["ark-bob"]})
        self.config_path.write_text(yaml.safe_dump(config))
        self.config = config
        self.controldir = ControlDir(Path(config["controldir"]))
        self.sessions = Path(config["session_roots"][0])
        for d in (self.controldir.root / "processing", self.sessions):
            d.mkdir(parents=True, exist_ok=True)
        apply_site_manifests(cluster, self.config_path)
        self.arkd: Arkd | None = None

    def start_arkd(self) -> Arkd:
        self.arkd = start_arkd(self.config_path, self.workdir / "arkd.log")
        return self.arkd

    def stop_arkd(self) -> None:
        if self.arkd:
            self.arkd.stop()

    @contextlib.contextmanager
    def arkd_down(self):
        """arkd stopped for the block (what happens meanwhile, it learns of only when it returns)."""
        self.stop_arkd()
        try:
            yield
        finally:
            self.start_arkd()

    def new_job(self, user: str, script: str, **options: str) -> GridJob:
        """Files as A-REX leaves them just before it calls submit-kubernetes-job."""
        grid_id = secrets.token_hex(16)
        entry = self.users[user]
        session = self.sessions / grid_id
        session.mkdir(mode=0o700)
        os.chown(session, entry.pw_uid, entry.pw_gid)
        fields = {"directory": str(session), "gridid": grid_id, "queue": "default",
                  "arg_0": "/bin/sh", "memory": "64", "walltime": "120", **options}
        grami = self.controldir.job_file(grid_id, "grami")
        grami.write_text("".join(f"joboption_{k}={quote(v)}\n" for k, v in fields.items()))
        script_path = self.workdir / f"{grid_id}.sh"
        script_path.write_text(script)
        for path in (grami, script_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.controldir.status_file(grid_id).write_text("SUBMIT")
        return GridJob(grid_id, user, grami, script_path, session)

    def client(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The stdlib client as the LRMS scripts run it: Debian's python3, as the mapped user."""
        entry = self.users[user] if user != "root" else None
        prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"] if entry else []
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.client_dir / "ark")}
        return subprocess.run([*prefix, "/usr/bin/python3", "-m", "arc_bridge.client",
                               "--socket", self.config["socket"], *args],
                              capture_output=True, text=True, env=env, timeout=60)

    def submit(self, job: GridJob, user: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self.client(user or job.user, "submit", str(job.grami), str(job.script))
        if result.returncode == 0:
            # What A-REX does after a successful submit.
            self.controldir.job_file(job.grid_id, "local").write_text(
                f"localid={self.local_id(job)}\nsessiondir={job.session}\n")
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
                raise AssertionError(f"no lrms_done for {job.grid_id} after {timeout} s; arkd log:\n"
                                     + (self.workdir / "arkd.log").read_text()[-3000:])
            time.sleep(0.1)
        return done.read_text().strip()

    def diag(self, job: GridJob) -> dict[str, str]:
        text = Path(f"{job.session}.diag").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def k8s_jobs(self) -> list[str]:
        out = self.cluster.kubectl("get", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd",
                                   "-o", "name").stdout
        return out.split()


@pytest.fixture(scope="module")
def site(cluster, grid_users):
    workdir = Path(tempfile.mkdtemp(prefix="ark-site-", dir="/tmp"))
    workdir.chmod(0o755)
    s = Site(workdir, cluster, grid_users)
    s.start_arkd()
    yield s
    s.stop_arkd()
    cluster.kubectl("delete", "jobs", "--all-namespaces", "-l", "app.kubernetes.io/managed-by=arkd", check=False)
    shutil.rmtree(workdir, ignore_errors=True)
