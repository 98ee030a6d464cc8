"""Faults while grid jobs are in flight: prints name=value figures on stdout, progress on stderr.

Runs on a split site of its own that Salt installs (control plane, registry, CE, two workers on
systemd-nspawn test hosts, plan PLAN below on a LAN no test run uses). A stream of short grid
jobs goes through the real A-REX, one `arcsub` each from the ARC client outside the site (a few
grid users' clients submitting side by side), and while it flows the faults of FAULTS are
injected one at a time, each inside the hosts (mostly through systemd), as an operator or a crash
would:

  arkd_kill9          kill -9 of arkd (systemd restarts it)
  apiserver_restart   a restart of kube-apiserver
  etcd_stop           etcd stopped for 30 s
  kubelet_stop        a worker's kubelet stopped for 60 s
  registry_down       the registry (nginx and docker-registry) stopped for 30 s, the workers'
                      cached VO images removed first, so that pods must pull meanwhile
  arex_restart        A-REX (arc-arex, arc-arex-ws) restarted; back once arcinfo gets its
                      information again
  sessiondir_full     the shared session file system (256 MiB) filled up for 30 s

Per fault, over the jobs in flight during it (submitted before it was over, not ended before it
began): `<fault>_jobs`, `_finished` (FINISHED in A-REX, no failure), `_failed_clear` (failed with
a reason A-REX shows), `_failed_silent` (failed without one), `_lost` (no terminal state by the
end), `_run_twice` (more than one pod for the ARC id, from a watch of every pod the site made),
`_recovery_s` (from the injection until the component answers again). Then totals over all jobs,
`submit_failed` (arcsub refused: the user saw it at once) included. Each failed job is listed on
stderr with A-REX's reason and the cause the LRMS script gave (its ERROR line in the job's log).

The goal is 0 lost and 0 run twice for every fault, and every failure with its cause named.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localsite.arcclient import ArcClient, ArcClientError
from localsite.host import Host
from localsite.saltsite import SESSIONDIR, HostPlan, Lan, SaltSite, SitePlan, grid_client

from .site import bench_site

# Not ALL_IN_ONE (LAN 21), SPLIT (LAN 30) or bench.arkd's (LAN 22): a test run may be up meanwhile.
# The session directory is a file system of its own, small enough to fill in a second.
PLAN = SitePlan("faults", Lan(24), (
    HostPlan("ark-f-cp", 41, ("control-plane",)),
    HostPlan("ark-f-registry", 45, ("registry",)),
    HostPlan("ark-f-ce", 42, ("ce",), shares_sessiondir=True),
    HostPlan("ark-f-wn1", 43, ("worker",), pod_cidr="10.214.41.0/24", shares_sessiondir=True),
    HostPlan("ark-f-wn2", 44, ("worker",), pod_cidr="10.214.42.0/24", shares_sessiondir=True),
), sessiondir_size="256m")
# A quota that never holds a job back: a Job refused by its quota is retried by the Job controller
# with a growing back-off of up to six minutes, which would be measured instead of the faults.
# The jobs wait for CPUs in the scheduler's queue instead.
PILLAR = {"arex": {"wakeupperiod": 10}, "vos": {"alpha": {"quota": {"cpu": "1000", "memory": "1000Gi"}}}}
KUBECTL = ("kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig")
CONTROLDIR = "/var/spool/arc/jobstatus"
PAYLOAD = ('&(executable="/bin/sh")(arguments="-c" "sleep 1; echo done > out.txt")(outputfiles=("out.txt" ""))'
           '(memory=64)')
TERMINAL = {"FINISHED", "DELETED"}
READY_TIMEOUT = 180.0

log = lambda msg: print(msg, file=sys.stderr, flush=True)


Step = Callable[[SaltSite], None]


@dataclass
class Fault:
    name: str
    begin: Step
    hold: float  # seconds until `end` (0: the fault is over once it began, as a restart is)
    end: Step | None
    ready: Callable[[Run], bool]  # the component answers again
    injected: float = 0.0
    recovered: float = 0.0


def host(site: SaltSite, role: str) -> Host:
    return site.with_role(role)


def on(role: str, *argv: str, every: bool = False) -> Step:
    """`argv` inside the (first, or with `every` each) host with this role."""
    def step(site: SaltSite) -> None:
        specs = [spec for spec in site.plan.hosts if role in spec.roles]
        for spec in specs if every else specs[:1]:
            site.hosts[spec.name].run(*argv, timeout=120)
    return step


def both(*steps: Step) -> Step:
    def step(site: SaltSite) -> None:
        for each in steps:
            each(site)
    return step


def _answers(run: Run, role: str, *argv: str) -> bool:
    return host(run.site, role).run(*argv, timeout=30).returncode == 0


def _arex_informs(run: Run) -> bool:
    """A grid user's arcinfo gets the CE's information: what arcsub needs before it submits, and
    what a restarted A-REX has only once its information provider has run."""
    try:
        return "Computing service:" in run.probe.info(timeout=60)
    except (ArcClientError, subprocess.TimeoutExpired):
        return False


# The workers forget the VO's images first, so that the pods started while the registry is down
# must pull, rather than start from the image cache.
FORGET_VO_IMAGES = ("sh", "-c", "ctr -n k8s.io images ls -q | grep '/vo-' | xargs -r ctr -n k8s.io images rm")
# As root, who may use a file system's last block: A-REX and the jobs' users see it full.
FILL = f"{SESSIONDIR}/.ark-bench-fill"

FAULTS = (
    Fault("arkd_kill9", on("ce", "systemctl", "kill", "--signal=KILL", "arkd"), 0, None,
          lambda r: _answers(r, "ce", "test", "-S", "/run/arkd/arkd.sock")
          and _answers(r, "ce", "systemctl", "is-active", "--quiet", "arkd")),
    Fault("apiserver_restart", on("control-plane", "systemctl", "restart", "kube-apiserver"), 0, None,
          lambda r: _answers(r, "control-plane", *KUBECTL, "get", "--raw=/readyz")),
    Fault("etcd_stop", on("control-plane", "systemctl", "stop", "etcd"), 30,
          on("control-plane", "systemctl", "start", "etcd"),
          lambda r: _answers(r, "control-plane", *KUBECTL, "get", "--raw=/readyz")),
    Fault("kubelet_stop", on("worker", "systemctl", "stop", "kubelet"), 60,
          on("worker", "systemctl", "start", "kubelet"),
          lambda r: "True" in host(r.site, "control-plane").run(
              *KUBECTL, "get", "node", r.site.plan.with_role("worker").name,
              "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", timeout=30).stdout),
    Fault("registry_down", both(on("worker", *FORGET_VO_IMAGES, every=True),
                                on("registry", "systemctl", "stop", "nginx", "docker-registry")), 30,
          on("registry", "systemctl", "start", "nginx", "docker-registry"),
          lambda r: _answers(r, "registry", "systemctl", "is-active", "--quiet", "nginx", "docker-registry")),
    Fault("arex_restart", on("ce", "systemctl", "restart", "arc-arex", "arc-arex-ws"), 0, None, _arex_informs),
    Fault("sessiondir_full", on("ce", "sh", "-c", f"dd if=/dev/zero of={FILL} bs=1M 2>/dev/null; true"), 30,
          on("ce", "rm", "-f", FILL),
          lambda r: _answers(r, "ce", "sh", "-c", f"echo probe > {FILL} && rm {FILL}")),
)


@dataclass
class Job:
    url: str
    grid_id: str
    submitted: float
    ended: float | None = None
    state: str = ""
    failure: str = ""


@dataclass
class Run:
    site: SaltSite
    probe: ArcClient  # a grid user's client the faults' readiness checks use
    jobs: list[Job] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # submissions arcsub reported as failed

    def inject(self, fault: Fault) -> None:
        """The fault, its end after `hold`, then wait until the component answers."""
        log(f"==> fault {fault.name}")
        fault.injected = time.monotonic()
        fault.begin(self.site)
        if fault.end is not None:
            time.sleep(fault.hold)
            fault.end(self.site)
        deadline = time.monotonic() + READY_TIMEOUT
        while not fault.ready(self) and time.monotonic() < deadline:
            time.sleep(0.5)
        fault.recovered = time.monotonic()
        log(f"    {fault.name}: back after {fault.recovered - fault.injected:.1f} s")

    def state_of(self, job: Job) -> tuple[str, str]:
        """A-REX's state of the job and its failure (reason; cause), from the CE's control directory."""
        root = host(self.site, "ce").root / CONTROLDIR.lstrip("/")
        for status in root.glob(f"*/job.{job.grid_id}.status"):
            try:
                state = status.read_text().strip()
                failed = root / f"job.{job.grid_id}.failed"
                if not failed.exists():
                    return state, ""
                errors = (root / f"job.{job.grid_id}.errors").read_text(errors="replace")
            except OSError:
                continue
            causes = [line[len("ERROR: "):] for line in errors.splitlines() if line.startswith("ERROR: ")]
            return state, "; ".join([failed.read_text().strip(), *causes[-1:]])
        return "", ""

    def poll(self) -> None:
        for job in self.jobs:
            if job.ended is None:
                job.state, job.failure = self.state_of(job)
                if job.state in TERMINAL:
                    job.ended = time.monotonic()


class PodHistory:
    """Every pod the site makes for a grid job, from a watch on the control plane (arkd deletes
    recorded Jobs and their pods, so a later listing would not show a second pod), with each
    pod's states as they came (phase, reason, the container's state), for the jobs that failed.
    The watch ends when the API server goes away, so it runs in a loop; each new watch lists what
    exists first."""

    def __init__(self, site: SaltSite, out: Path):
        self.out = out
        template = ('{.metadata.labels.ark\\.nordugrid\\.org/job-id} {.metadata.uid} {.status.phase} '
                    '{.status.reason} {.status.containerStatuses[*].state}{"\\n"}')
        watch = shlex.join([*KUBECTL, "get", "pods", "--all-namespaces", "--watch", "-l",
                            "app.kubernetes.io/managed-by=arkd", "-o", f"jsonpath={template}"])
        argv = host(site, "control-plane").command(["sh", "-c", f"while :; do {watch}; sleep 1; done"])
        self.file = out.open("w")
        self.proc = subprocess.Popen(argv, stdout=self.file, stderr=subprocess.DEVNULL, start_new_session=True)

    def pods_by_job(self) -> dict[str, set[str]]:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.file.close()
        pods: dict[str, set[str]] = defaultdict(set)
        for line in self.out.read_text().splitlines():
            if len(parts := line.split()) >= 2:
                pods[parts[0]].add(parts[1])
        return pods

    def last_state(self, grid_id: str) -> str:
        """The pod's last state the watch saw (phase, reason, container state)."""
        lines = [line for line in self.out.read_text().splitlines() if line.startswith(grid_id + " ")]
        return lines[-1].split(" ", 2)[-1] if lines else "no pod seen"


def submit(run: Run, client: ArcClient, workdir: Path, n: int) -> None:
    submitted = time.monotonic()
    try:
        url = client.submit(PAYLOAD, cwd=workdir)
    except (ArcClientError, subprocess.TimeoutExpired) as e:
        run.refused.append(n)
        log(f"    submit {n} refused: {str(e).splitlines()[-1][:160]}")
        return
    run.jobs.append(Job(url, url.rstrip("/").rsplit("/", 1)[-1], submitted))


def stream(run: Run, clients: list[ArcClient], workdir: Path, count: int, faults: tuple[Fault, ...],
           wait: float) -> None:
    """`count` jobs, one arcsub each, the clients submitting side by side; fault i is injected (in
    the background) once count*(i+1)/(n+1) jobs were submitted. The stream waits there for the
    fault before to have recovered, so that each fault meets jobs of its own."""
    marks = [count * (i + 1) // (len(faults) + 1) for i in range(len(faults))]
    current: threading.Thread | None = None
    pending = list(faults)
    for first in range(0, count, len(clients)):
        if pending and first >= marks[len(faults) - len(pending)]:
            if current is not None:
                current.join()
            current = threading.Thread(target=run.inject, args=(pending.pop(0),), daemon=True)
            current.start()
        batch = [threading.Thread(target=submit, args=(run, client, workdir, first + i))
                 for i, client in enumerate(clients[:count - first])]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()
        if first % 20 < len(clients):
            run.poll()
            done = sum(j.ended is not None for j in run.jobs)
            log(f"    {first + len(batch)}/{count} submitted, {done} ended")
    if current is not None:
        current.join()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run.poll()
        if all(j.ended is not None for j in run.jobs):
            break
        time.sleep(2)


def figures(run: Run, faults: tuple[Fault, ...], pods: dict[str, set[str]]) -> list[str]:
    def counts(jobs: list[Job]) -> dict[str, int]:
        return {
            "jobs": len(jobs),
            "finished": sum(j.state == "FINISHED" and not j.failure for j in jobs),
            "failed_clear": sum(j.ended is not None and bool(j.failure) for j in jobs),
            "failed_silent": sum(j.state == "DELETED" and not j.failure for j in jobs),
            "lost": sum(j.ended is None for j in jobs),
            "run_twice": sum(len(pods.get(j.grid_id, ())) > 1 for j in jobs),
        }

    lines = []
    for fault in faults:
        during = [j for j in run.jobs
                  if j.submitted <= fault.recovered and (j.ended is None or j.ended >= fault.injected)]
        lines += [f"{fault.name}_{k}={v}" for k, v in counts(during).items()]
        lines.append(f"{fault.name}_recovery_s={fault.recovered - fault.injected:.1f}")
    lines += [f"total_{k}={v}" for k, v in counts(run.jobs).items()]
    lines.append(f"submit_failed={len(run.refused)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="grid jobs in the stream (default %(default)s)")
    parser.add_argument("--faults", default=",".join(f.name for f in FAULTS),
                        help="which faults, in order (default: all)")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait for the last jobs (default %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="ARC clients submitting side by side (default %(default)s)")
    args = parser.parse_args()
    by_name = {f.name: f for f in FAULTS}
    unknown = [n for n in args.faults.split(",") if n not in by_name]
    if unknown:
        parser.error(f"unknown fault {', '.join(unknown)} (known: {', '.join(by_name)})")
    faults = tuple(by_name[n] for n in args.faults.split(","))
    # Ctrl-C or SIGTERM (even where a shell started the bench with SIGINT ignored) shuts the site down.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)

    with bench_site(PLAN, PILLAR, log) as (site, work):
        clients = [grid_client(site, work / f"client-{i}") for i in range(args.clients)]
        jobdir = work / "jobs"
        jobdir.mkdir(mode=0o755)
        run = Run(site, clients[0])
        history = PodHistory(site, work / "pods.txt")
        started = time.monotonic()
        log(f"==> {args.jobs} grid jobs, faults: {', '.join(f.name for f in faults)}")
        try:
            stream(run, clients, jobdir, args.jobs, faults, args.wait)
        finally:
            pods = history.pods_by_job()
        log(f"==> stream over in {time.monotonic() - started:.0f} s")
        for job in run.jobs:
            if job.failure or job.ended is None:
                during = [f.name for f in faults if job.submitted <= f.recovered and (job.ended or 1e12) >= f.injected]
                log(f"    {job.grid_id} (submitted at {job.submitted - started:.0f} s, in flight during "
                    f"{', '.join(during) or 'no fault'}): {job.state or 'no state'} {job.failure[:400]}")
                log(f"      its pod, last seen: {history.last_state(job.grid_id)[:400]}")
    print("\n".join(figures(run, faults, pods)))


if __name__ == "__main__":
    main()
