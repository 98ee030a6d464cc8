"""A one-node Slurm cluster on the CE host, for bench/peers: Debian's slurmctld, slurmd and munge.

Debian's packages come from the machine's own apt sources (ark.aptrepo: the closure as for an
empty machine, in a download cache of the benchmark's own), are copied into the host as a flat
repository and installed there with apt, using lists of their own so that the host's apt state
(the site bundle's repository) stays as the deploy left it. The node is the CE host itself, with
the CPUs and memory `slurmd -C` finds, one partition per queue in A-REX's configuration, and no
cgroup plugins (the host is a container) and no accounting database (ARC reads job ends with
scontrol then: `slurm_use_sacct = no`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ark import aptrepo
from localsite.host import Host

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
CACHE = Path("/var/cache/ark/bench-peers-apt")
HERE = "/var/tmp/ark-peers"  # inside the host
UNITS = ("munge", "slurmctld", "slurmd")
READY_TIMEOUT = 120.0
MUNGE_DROPIN = "50-bench-foreground"


def slurm_conf(node_line: str, address: str, partitions: list[str]) -> str:
    """slurm.conf for one node (`node_line`: the NodeName line `slurmd -C` prints) at `address`
    that runs every partition; the first partition is the default."""
    node = node_line.split()[0].removeprefix("NodeName=")
    lines = [
        "# bench/slurm.py: a one-node cluster on the CE host, for bench/peers",
        "ClusterName=ark-peers",
        # Addresses given, so nothing depends on how the host resolves its own name.
        f"SlurmctldHost={node}({address})",
        "SlurmUser=slurm",
        "AuthType=auth/munge",
        # A container: no cgroup plugins, processes tracked by their parent ids.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "ReturnToService=2",
        "StateSaveLocation=/var/lib/slurm/slurmctld",
        "SlurmdSpoolDir=/var/lib/slurm/slurmd",
        "SlurmctldPidFile=/run/slurmctld.pid",
        "SlurmdPidFile=/run/slurmd.pid",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
        "SlurmdLogFile=/var/log/slurm/slurmd.log",
        f"{node_line} NodeAddr={address} State=UNKNOWN",
    ]
    lines += [f"PartitionName={name} Nodes=ALL Default={'YES' if i == 0 else 'NO'} MaxTime=INFINITE State=UP"
              for i, name in enumerate(partitions)]
    return "\n".join(lines) + "\n"


def node_line(slurmd_c: str) -> str:
    """The NodeName line of `slurmd -C` output."""
    for line in slurmd_c.splitlines():
        if line.startswith("NodeName="):
            return line.strip()
    raise RuntimeError(f"slurmd -C printed no NodeName line: {slurmd_c!r}")


class SlurmNode:
    def __init__(self, host: Host, log: Callable[[str], None]):
        self.host = host
        self.log = log

    def install(self) -> None:
        self.log(f"==> slurm: installing {', '.join(PACKAGES)} on {self.host.name}")
        debs = aptrepo.resolve(PACKAGES, CACHE)
        archives = aptrepo.download(debs, PACKAGES, CACHE, self.log)
        repo = self.host.root / HERE.lstrip("/") / "debs"
        shutil.rmtree(repo.parent, ignore_errors=True)
        repo.mkdir(parents=True)
        for deb in debs:
            shutil.copy(archives / deb.filename, repo / deb.filename)
        packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo, capture_output=True, text=True,
                                  check=True).stdout
        (repo / "Packages").write_text(packages)
        (repo.parent / "sources.list").write_text(f"deb [trusted=yes] file:{HERE}/debs ./\n")
        (repo.parent / "lists/partial").mkdir(parents=True)
        private = ["-o", f"Dir::Etc::SourceList={HERE}/sources.list", "-o", "Dir::Etc::SourceParts=/nonexistent",
                   "-o", f"Dir::State::Lists={HERE}/lists"]
        self.host.output("apt-get", "-q", *private, "update", timeout=300)
        # The daemons start when the benchmark says, configured: not from the packages' scripts.
        policy = self.host.root / "usr/sbin/policy-rc.d"
        if policy.exists():
            raise RuntimeError(f"{self.host.name} has a policy-rc.d of its own; not replacing it")
        policy.write_text("#!/bin/sh\n# bench/slurm.py, while it installs Slurm\nexit 101\n")
        policy.chmod(0o755)
        try:
            self.host.output("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "--no-install-recommends",
                             *private, "install", *PACKAGES, timeout=600)
        finally:
            policy.unlink()
        # munged forks and writes its PID file as user munge, which systemd in a container whose
        # cgroups it cannot fully read refuses as the service's main PID, failing the start after
        # 90 s: run it in the foreground instead (a runtime drop-in, the host's own /run).
        self.host.runtime_dropin("munge.service", MUNGE_DROPIN, "# bench/slurm.py\n[Service]\nType=simple\nPIDFile=\n"
                                 "ExecStart=\nExecStart=/usr/sbin/munged --foreground $OPTIONS\n")

    def configure(self, address: str, partitions: list[str]) -> None:
        conf = slurm_conf(node_line(self.host.output("slurmd", "-C", timeout=60)), address, partitions)
        self.host.output("sh", "-c", "mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm "
                         "&& chown slurm: /var/lib/slurm/slurmctld /var/log/slurm", timeout=60)
        (self.host.root / "etc/slurm/slurm.conf").write_text(conf)
        if not (self.host.root / "etc/munge/munge.key").exists():
            self.host.output("sh", "-c", "mungekey --create && chown munge: /etc/munge/munge.key", timeout=60)

    def start(self) -> None:
        self.log("==> slurm: starting munge, slurmctld and slurmd")
        self.host.output("systemctl", "start", *UNITS, timeout=300)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            states = self.host.run("sinfo", "-h", "-o", "%t", timeout=30).stdout.split()
            if states and all(s == "idle" for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm's node is not idle after {READY_TIMEOUT:.0f} s (sinfo: {states}); "
                                   f"slurmd's log:\n{self.host.run('tail', '-20', '/var/log/slurm/slurmd.log').stdout}")
            time.sleep(1)

    def stop(self) -> None:
        self.host.output("systemctl", "stop", *reversed(UNITS), timeout=300)
