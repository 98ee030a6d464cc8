"""arkd at scale: prints name=value figures on stdout, progress on stderr (see bench/scale).

Runs on bench/arkd.py's site (every role on one test host, installed by Salt) with the product's
arkd, A-REX stopped (localsite.cehost): the benchmark writes the control directory as A-REX
would, submits through arkd's socket as the mapped user, and parks every Job on a queue whose
nodes do not exist, so no container starts and what is measured is arkd tracking jobs.

For each size n (default 1000, 3000, 10000; cumulative):
- rss_mb_<n>: arkd's resident memory (VmRSS) once its cache holds the n jobs;
- idle_cpu_pct_<n>: arkd's CPU (user + system) over --idle seconds with nothing happening, in
  per cent of one core;
- idle_api_rps_<n>: the HTTP requests arkd made to the API server in that time, per second (a
  watch counts once, when it is opened; arkd counts them itself, `arc-bridge info`'s `arkd`);
- info_s_<n>: wall time of `arc-bridge info`, what A-REX's infoprovider runs;
- resync_s_<n>: after `kill -9` of arkd (systemd starts it again), from the new arkd's first log
  line to its "serving" line: the watches' lists, its cache complete and every job A-REX waits
  for matched against Kubernetes.
Then, at the largest size:
- record_<k>_s: k jobs ended at once (their Jobs deleted in one `kubectl delete`): from the
  delete to the k-th `.lrms_done`, each recorded as deleted by someone other than arkd;
- lost: jobs never ended that arkd reported anyway (a `.lrms_done` without cause);
- duplicated: jobs arkd recorded more than once over the whole run (its journal's "ended" lines).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from datetime import datetime

import yaml

from arc_bridge.translate import k8s_name
from localsite.cehost import AREX_UNITS, CeHost, GridJob
from localsite.saltsite import example_pillar

from .arkd import CALL_TIMEOUT, CLIENT_DIR, HERE, PILLAR, PLAN, Bench, log
from .site import bench_site

ARC_BRIDGE = f"{example_pillar()['bridge']['venv']}/bin/arc-bridge"
# Longer than any run: arkd stops a job past its wall time itself, which would end parked jobs.
PARKED_WALLTIME = 86400
CACHE_TIMEOUT = 300.0
RECORD_TIMEOUT = 600.0


class Scale(Bench):
    def __init__(self, ce: CeHost, workers: int):
        super().__init__(ce)
        self.workers = workers
        self.jobs: list[GridJob] = []

    def grow_to(self, n: int) -> float:
        """Submit parked jobs until n are tracked, marked INLRMS as A-REX would; Jobs per second."""
        new = [self.new_job("parked", walltime=PARKED_WALLTIME) for _ in range(n - len(self.jobs))]
        rate = float(self.inside("create", CLIENT_DIR, self.ce.socket, self.listing("scale.txt", new),
                                 str(self.workers), str(CALL_TIMEOUT), user=True, timeout=len(new) * CALL_TIMEOUT + 60))
        for job in new:
            self.ce.controldir.job_file(job.grid_id, "local").write_text(
                f"localid={k8s_name(job.grid_id)}\nsessiondir={self.ce.inside(job.session)}\n")
            self.ce.controldir.status_file(job.grid_id).write_text("INLRMS")
        self.jobs += new
        self.wait_tracked(n)
        return rate

    def arkd_info(self) -> dict:
        result = self.ce.arc_bridge("info")
        if result.returncode != 0:
            sys.exit(f"arc-bridge info failed: {result.stderr[-1000:]}")
        return json.loads(result.stdout)["arkd"]

    def wait_tracked(self, n: int) -> None:
        deadline = time.monotonic() + CACHE_TIMEOUT
        while (tracked := self.arkd_info()["tracked_jobs"]) != n:
            if time.monotonic() > deadline:
                sys.exit(f"arkd tracks {tracked} jobs, not {n}, after {CACHE_TIMEOUT:.0f} s")
            time.sleep(1)

    def arkd_pid(self) -> int:
        pid = int(self.ce.ce.run("systemctl", "show", "-p", "MainPID", "--value", "arkd", check=True).stdout)
        if pid == 0:
            sys.exit("arkd is not running")
        return pid

    def proc(self, pid: int, name: str) -> str:
        return self.ce.ce.run("cat", f"/proc/{pid}/{name}", check=True).stdout

    def rss_mb(self) -> float:
        (line,) = [l for l in self.proc(self.arkd_pid(), "status").splitlines() if l.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def cpu_seconds(self, pid: int) -> float:
        fields = self.proc(pid, "stat").rsplit(")", 1)[1].split()
        ticks = int(self.ce.ce.run("getconf", "CLK_TCK", check=True).stdout)
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    def idle(self, seconds: float) -> tuple[float, float]:
        """arkd's CPU (% of a core) and API requests per second over `seconds` of nothing."""
        pid = self.arkd_pid()
        # The info calls that read the count make requests of their own (quotas, nodes) and cost
        # arkd CPU: the window starts after the first and ends before the second.
        requests = self.arkd_info()["api_requests"]
        cpu, started = self.cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        cpu_after, elapsed = self.cpu_seconds(pid), time.monotonic() - started
        requests_after = self.arkd_info()["api_requests"] - self.info_requests
        return 100 * (cpu_after - cpu) / elapsed, (requests_after - requests) / elapsed

    @property
    def info_requests(self) -> int:
        """What one `info` asks of the API server: one quota per VO, and the nodes."""
        return len(self.config.vos) + 1

    def info_seconds(self) -> float:
        return float(self.inside("timed", "120", ARC_BRIDGE, "info", timeout=180))

    def resync(self) -> float:
        """kill -9 arkd; seconds from the new arkd's first log line to its serving line."""
        since = time.time()
        old = self.arkd_pid()
        self.ce.ce.run("kill", "-9", str(old), check=True)
        deadline = time.monotonic() + CACHE_TIMEOUT
        while True:
            lines = self.journal(since).splitlines()
            started = [l for l in lines if " INFO arkd: listing Jobs and pods" in l]
            serving = [l for l in lines if " INFO arkd: serving on " in l]
            if started and serving:
                break
            if time.monotonic() > deadline:
                sys.exit(f"arkd did not serve again within {CACHE_TIMEOUT:.0f} s of kill -9:\n" + "\n".join(lines[-20:]))
            time.sleep(0.5)
        return (stamp(serving[-1]) - stamp(started[-1]))

    def end_at_once(self, k: int) -> tuple[float, list[GridJob]]:
        """k jobs' Jobs deleted in one `kubectl delete` (as an admin ends jobs by hand); seconds
        from the delete to the k-th `.lrms_done`. Parked Jobs cannot end by themselves, and a
        deadline does not end them at once: the Job controller syncs Jobs whose pods the VO's
        quota refuses only after its back-off."""
        ending = self.jobs[:k]
        refs = [{"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": {"name": k8s_name(j.grid_id), "namespace": self.namespace}} for j in ending]
        (self.ce.outside(HERE) / "ending.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                                           "items": refs}))
        started = time.monotonic()
        deleted = self.ce.kubectl("delete", "-f", f"{HERE}/ending.yaml", "--wait=false")
        if deleted.returncode != 0:
            sys.exit(f"kubectl delete failed: {deleted.stderr[-2000:]}")
        deadline = started + RECORD_TIMEOUT
        waiting = {j.grid_id for j in ending}
        while waiting:
            waiting = {g for g in waiting if not self.ce.controldir.job_file(g, "lrms_done").exists()}
            if time.monotonic() > deadline:
                sys.exit(f"{len(waiting)} of {k} jobs not recorded after {RECORD_TIMEOUT:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started, ending

    def lost_and_duplicated(self, ended: list[GridJob], since: float) -> tuple[int, int]:
        ended_ids = {j.grid_id for j in ended}
        lost = sum(1 for j in self.jobs if j.grid_id not in ended_ids
                   and self.ce.controldir.job_file(j.grid_id, "lrms_done").exists())
        records = Counter(m.group(1) for line in self.journal(since).splitlines()
                          if (m := re.search(r" INFO \S+: job (\S+) ended:", line)))
        return lost, sum(1 for count in records.values() if count > 1)


STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def stamp(line: str) -> float:
    m = STAMP_RE.match(line)
    if not m:
        sys.exit(f"no time stamp in arkd's log line {line!r}")
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,3000,10000", help="tracked jobs at each step (default %(default)s)")
    parser.add_argument("--record", type=int, default=1000, help="jobs ended at once at the end (default %(default)s)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle measurement (default %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="threads submitting to arkd (default %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="100 jobs, 50 ended, 5 s idle: proves the bench runs")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.record, args.idle = "100", 50, 5.0
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    if args.record > sizes[-1]:
        parser.error(f"--record {args.record} is more than the largest size {sizes[-1]}")

    # Each figure is printed as soon as it is measured: a run cut short keeps what it measured.
    def figure(name: str, value: float) -> None:
        print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)

    with bench_site(PLAN, PILLAR, log) as (site, _work):
        # A-REX stopped, and the site thrown away afterwards: no clean-up of 10,000 jobs.
        ce = CeHost(site)
        ce.systemctl("stop", *AREX_UNITS)
        bench = Scale(ce, args.workers)
        since = time.time()
        for n in sizes:
            log(f"==> {n} jobs tracked: submitting {n - len(bench.jobs)} more")
            figure(f"create_per_s_{n}", bench.grow_to(n))
            figure(f"rss_mb_{n}", bench.rss_mb())
            log(f"==> {n} jobs: idle for {args.idle:g} s")
            cpu, rps = bench.idle(args.idle)
            figure(f"idle_cpu_pct_{n}", cpu)
            figure(f"idle_api_rps_{n}", rps)
            figure(f"info_s_{n}", bench.info_seconds())
            log(f"==> {n} jobs: kill -9 arkd")
            figure(f"resync_s_{n}", bench.resync())
            bench.wait_tracked(n)
        log(f"==> ending {args.record} of {sizes[-1]} jobs at once")
        seconds, ended = bench.end_at_once(args.record)
        figure(f"record_{args.record}_s", seconds)
        lost, duplicated = bench.lost_and_duplicated(ended, since)
    figure("lost", lost)
    figure("duplicated", duplicated)
    if lost or duplicated:
        sys.exit(f"{lost} jobs lost, {duplicated} recorded twice")


if __name__ == "__main__":
    main()
