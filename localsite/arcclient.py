"""The grid user's side: the real ARC command-line client (arcproxy, arcsub, arcstat, arcget, arckill).

The client runs on this machine, outside the site, as a grid user would run it from her laptop.
It is isolated in its own directory (client.conf, proxy, job list and HOME, so ~/.arc is never
read or created) and sees the site's host names through a private /etc/hosts bound over the
machine's in a mount namespace of its own, so the machine's /etc/hosts stays untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FINAL_STATES = frozenset({"Finished", "Failed", "Killed", "Deleted"})


class ArcClientError(RuntimeError):
    """An ARC client command failed, or a job did not reach the state a caller waited for."""


@dataclass(frozen=True)
class GridIdentity:
    """What a grid user holds: her certificate and key, and the CAs she trusts (a hashed directory)."""

    cert: Path
    key: Path
    ca_dir: Path


@dataclass
class ArcClient:
    endpoint: str  # https://HOST:PORT/arex
    home: Path
    conffile: Path
    joblist: Path
    proxy: Path
    hosts_file: Path  # bound over /etc/hosts for every command
    env: dict[str, str] = field(repr=False)

    @classmethod
    def create(cls, home: Path, endpoint: str, identity: GridIdentity, hosts: dict[str, str]) -> ArcClient:
        """A client in `home` for `identity`, resolving `hosts` (name -> address), with a fresh proxy."""
        home.mkdir(parents=True, exist_ok=True)
        proxy, joblist, conffile, hosts_file = (home / n for n in ("proxy.pem", "jobs.dat", "client.conf", "hosts"))
        conffile.write_text(
            "[common]\n"
            f"proxypath = {proxy}\n"
            f"certificatepath = {identity.cert}\n"
            f"keypath = {identity.key}\n"
            f"cacertificatesdirectory = {identity.ca_dir}\n"
            "timeout = 60\n")
        hosts_file.write_text(Path("/etc/hosts").read_text()
                              + "".join(f"\n{address}\t{name}" for name, address in hosts.items()) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("X509_", "ARC_"))}
        env |= {"HOME": str(home), "X509_USER_PROXY": str(proxy), "X509_CERT_DIR": str(identity.ca_dir),
                "X509_USER_CERT": str(identity.cert), "X509_USER_KEY": str(identity.key)}
        client = cls(endpoint, home, conffile, joblist, proxy, hosts_file, env)
        client.run("arcproxy", "-z", str(conffile), "-C", str(identity.cert), "-K", str(identity.key),
                   "-T", str(identity.ca_dir), "-P", str(proxy))
        return client

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        """Run an ARC client command in this client's environment; return stdout+stderr.
        Raises ArcClientError with the output when it exits non-zero."""
        bound = ("unshare", "--mount", "--propagation=private", "sh", "-c",
                 'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts_file))
        proc = subprocess.run([*bound, *args], env=self.env, cwd=cwd or self.home, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0:
            raise ArcClientError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")
        return proc.stdout

    def arc(self, command: str, *args: str, cwd: Path | None = None, timeout: float = 300) -> str:
        """An ARC client command with this client's configuration and job list."""
        return self.run(command, "-z", str(self.conffile), "-j", str(self.joblist), *args, cwd=cwd, timeout=timeout)

    def submit(self, xrsl: str, cwd: Path) -> str:
        """Submit an xRSL job (relative input files resolve against `cwd`); return its URL."""
        (url,) = submitted(self.arc("arcsub", "-C", self.endpoint, "-T", "arcrest", "-e", xrsl, cwd=cwd), 1)
        return url

    def submit_file(self, path: Path, count: int, cwd: Path, timeout: float = 300) -> list[str]:
        """Submit the `count` jobs of an xRSL file (several as `+(&...)(&...)`) in one arcsub;
        their URLs, in the file's order."""
        out = self.arc("arcsub", "-C", self.endpoint, "-T", "arcrest", str(path), cwd=cwd, timeout=timeout)
        return submitted(out, count)

    def info(self, long: bool = False, timeout: float = 300) -> str:
        """`arcinfo` (with -l, everything) of this client's CE."""
        return self.run("arcinfo", "-z", str(self.conffile), *(["-l"] if long else []), self.endpoint, timeout=timeout)

    def published(self) -> str:
        """The CE's GLUE2 document, as A-REX's REST interface serves it to this user: what
        arcinfo and arcsub read, with what arcinfo leaves out (the execution environments)."""
        return self.run("curl", "-sSf", "--cert", self.env["X509_USER_CERT"], "--key", self.env["X509_USER_KEY"],
                        "--capath", self.env["X509_CERT_DIR"], "-H", "Accept: application/xml",
                        f"{self.endpoint}/rest/1.0/info")

    def details(self, job_url: str) -> dict[str, str]:
        """`arcstat -l` as a dict (keys as printed, e.g. "State", "Exit Code")."""
        out = self.arc("arcstat", "-l", job_url)
        return {m.group(1): m.group(2).strip()
                for m in re.finditer(r"^\s+([A-Za-z][A-Za-z ]*?):\s*(.*)$", out, re.M)}

    def status(self, job_url: str) -> str:
        """The job's ARC state as arcstat shows it, e.g. "Running" or "Finished";
        "" while the information system has no record of the job yet."""
        match = re.search(r"^\s*State:\s*(\S+)", self.arc("arcstat", job_url), re.M)
        return match.group(1) if match else ""

    def wait(self, job_url: str, states: Iterable[str] = FINAL_STATES, timeout: float = 300, poll: float = 1.0) -> str:
        """Poll status until it is one of `states`; return that state. Fails at once when the job
        reaches a final state that is not wanted (it cannot leave it)."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.status(job_url)
            if state in wanted:
                return state
            if state in FINAL_STATES:
                raise ArcClientError(f"{job_url} ended {state}, not {sorted(wanted)}:\n"
                                     f"{self.arc('arcstat', '-l', job_url)}\n{self.job_log(job_url)}")
            time.sleep(poll)
        raise ArcClientError(f"{job_url} still {state or 'unknown'} after {timeout}s")

    def get(self, job_url: str, download_dir: Path) -> Path:
        """Download the job's outputs (arcget, which also cleans the job); return the directory."""
        download_dir.mkdir(parents=True, exist_ok=True)
        out = self.arc("arcget", "-D", str(download_dir), job_url)
        match = re.search(r"Results stored at:\s*(\S+)", out)
        if not match:
            raise ArcClientError(f"arcget stored no results:\n{out}")
        return Path(match.group(1))

    def kill(self, job_url: str) -> None:
        self.arc("arckill", job_url)

    def job_log(self, job_url: str) -> str:
        """A-REX's log of the job (`arccat -l`): the submit script's errors among them."""
        return self.arc("arccat", "-l", job_url)


def submitted(arcsub_output: str, count: int) -> list[str]:
    """The job URLs arcsub printed; ArcClientError unless there are `count`."""
    urls = re.findall(r"Job submitted with jobid:\s*(\S+)", arcsub_output)
    if len(urls) != count:
        raise ArcClientError(f"arcsub submitted {len(urls)} of {count} jobs:\n{arcsub_output[-3000:]}")
    return urls
