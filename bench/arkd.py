"""arkd benchmark: prints name=value figures on stdout, progress on stderr (see bench/run).

Runs on a site of its own that Salt installs with every role on one systemd-nspawn test host
(localsite.saltsite: plan PLAN below, on a LAN no test run uses), with the product's arkd (the
systemd unit `arkd`), the real /usr/share/arc/submit-kubernetes-job and /etc/arc.conf, and the
site's Kubernetes. A-REX's services are stopped for the measurement (localsite.cehost): the
benchmark writes the control directory as A-REX would and runs the LRMS side as the mapped user
inside the host.

- submit_p50_ms / submit_p99_ms: wall time of the real submit-kubernetes-job, run as the mapped
  user (setpriv) with the arguments A-REX uses (ARC's submit_common.sh builds the job script, then
  arkd checks and creates the Job), timed inside the host.
- create_ratio: Jobs/s created through arkd's socket (WORKERS threads of the stdlib client's
  protocol, as the mapped user) divided by Jobs/s of one raw `kubectl create -f` (site admin
  kubeconfig) of the same manifests for as many other jobs, both measured in this run inside the
  host. Jobs are parked on a queue whose nodes do not exist, so pod start-up does not compete.
- notice_p50_ms / notice_p99_ms: from the last instant of a container to `.lrms_done` existing in
  the control directory. These jobs go straight to arkd's socket with a one-line script that ends
  by writing the time, so the figure is not blurred by the ARC job script's epilogue; their
  submissions are spread at random against the kubelet's 1 s status relist, which dominates.
- arkd_share_p50_ms / arkd_share_p99_ms: of that, the part spent in arkd: from the watch event
  that shows the pod ended to the job's 'ended' record (written after `.lrms_done`), both read
  from arkd's own --verbose log in the host's journal. The unit Salt installs runs arkd without
  --verbose and the pillar has no setting for it, so for the notice jobs only the benchmark adds
  a runtime drop-in (/run/systemd/..., gone at the next boot) that appends --verbose, restarts
  arkd, and removes it afterwards; --no-arkd-verbose leaves arkd alone and skips arkd_share.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from arc_bridge import arcconf
from arc_bridge.config import parse_config
from arc_bridge.grami import parse_grami, quote
from arc_bridge.job import job_from_grami
from arc_bridge.translate import LABEL_QUEUE, Caller, build_job
from localsite.cehost import KUBECTL, CeHost, GridJob
from localsite.saltsite import ROLES, HostPlan, Lan, SitePlan

from .site import bench_site

USER, UID = "ark-bench", 20021
# Not ALL_IN_ONE (LAN 21, host 2) nor SPLIT (LAN 30, hosts 31-35): a test run may be up meanwhile.
PLAN = SitePlan("bench", Lan(22), (HostPlan("ark-bench", 3, ROLES),))
PILLAR = {
    "vos": {"alpha": {"users": {USER: UID}}},
    # Its node selector matches no node: Jobs created there never start a container.
    "queues": {"parked": {"vos": ["alpha"], "node_selector": {"ark.nordugrid.org/queue": "nowhere"}}},
    # A-REX is stopped while the benchmark runs; when it starts again it finds nothing of ours.
    "arex": {"wakeupperiod": 10},
}
ARC_CONF = "/etc/arc.conf"
CLIENT_DIR = "/usr/share/arc/ark"  # the stdlib client, where arc-bridge install-lrms put it
HERE = "/var/tmp/ark-bench"  # inside the host: the timing helper and the benchmark's lists
HOST_PYTHON = "/usr/bin/python3"
VERBOSE_DROPIN = "50-bench-verbose"
NOTICE_TIMEOUT = 120.0
CALL_TIMEOUT = 60.0
STAMP = "%Y-%m-%d %H:%M:%S,%f"

log = lambda msg: print(msg, file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, ce: CeHost):
        self.ce = ce
        self.uid = ce.uid(USER)
        self.gid = int(ce.ce.run("id", "-g", USER, check=True).stdout)
        self.config = parse_config(ce.config)
        self.namespace = self.config.vos["alpha"].namespace
        self.controldir = ce.config["controldir"]
        self.tmpdir = arc_conf_option(ce.outside(ARC_CONF).read_text(), "arex", "tmpdir")
        here = ce.outside(HERE)
        here.mkdir(mode=0o755, exist_ok=True)
        here.chmod(0o755)
        shutil.copy(Path(__file__).with_name("inside.py"), here / "inside.py")
        (here / "inside.py").chmod(0o644)
        self.verbose = False

    # --- acting as A-REX and as the mapped user ---------------------------------------------

    def new_job(self, queue: str, script: str = "true\n", walltime: int = 300) -> GridJob:
        job = self.ce.new_job(USER, script, queue=queue, arg_0="/bin/true", memory="32", walltime=str(walltime),
                              controldir=self.controldir)
        session = self.ce.inside(job.session)
        with job.grami.open("a") as grami:  # what A-REX writes that needs the id
            for key, value in (("env_0", f"GRID_GLOBAL_JOBID=https://{self.ce.ce.name}:8443/arex/{job.grid_id}"),
                               ("stdout", f"{session}/out"), ("stderr", f"{session}/err")):
                grami.write(f"joboption_{key}={quote(value)}\n")
        return job

    def listing(self, name: str, jobs: list[GridJob]) -> str:
        (self.ce.outside(HERE) / name).write_text("\n".join(self.ce.inside(j.grami) for j in jobs) + "\n")
        return f"{HERE}/{name}"

    def inside(self, *args: str, user: bool = False, timeout: float) -> str:
        """The timing helper inside the host, as root or as the mapped user; its stdout."""
        prefix = ("setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups") if user else ()
        result = self.ce.ce.run(*prefix, HOST_PYTHON, "-S", f"{HERE}/inside.py", *args, timeout=timeout)
        if result.returncode != 0:
            sys.exit(f"bench/inside.py {args[0]} failed: {result.stdout[-1000:]}{result.stderr[-3000:]}")
        return result.stdout

    def clear_parked(self) -> None:
        result = self.ce.kubectl("delete", "jobs", "-n", self.namespace, "-l", f"{LABEL_QUEUE}=parked",
                                 "--wait=true")
        if result.returncode != 0:
            sys.exit(f"could not delete the parked Jobs: {result.stderr}")

    # --- the figures ----------------------------------------------------------------------

    def measure_submit(self, n: int) -> list[float]:
        jobs = [self.new_job("parked") for _ in range(n)]
        out = self.inside("submit", str(self.uid), str(self.gid), ARC_CONF, self.tmpdir,
                          self.listing("submit.txt", jobs), str(CALL_TIMEOUT), timeout=n * CALL_TIMEOUT + 60)
        self.clear_parked()
        return json.loads(out)

    def measure_create(self, n: int, workers: int) -> tuple[float, float]:
        # Two sets of n jobs, so that each run creates n new Jobs and the raw Jobs' deletion (which
        # arkd records as the end of their jobs) leaves the jobs submitted through arkd untouched.
        raw_jobs = [self.new_job("parked") for _ in range(n)]
        arkd_jobs = [self.new_job("parked") for _ in range(n)]
        caller = Caller(self.uid, self.gid, USER)
        manifests = [build_job(job_from_grami(parse_grami(j.grami.read_bytes()), self.config), caller, self.config,
                               "true\n") for j in raw_jobs]
        (self.ce.outside(HERE) / "raw.yaml").write_text(yaml.safe_dump_all(manifests))
        elapsed = float(self.inside("timed", "300", *KUBECTL, "create", "-f", f"{HERE}/raw.yaml", timeout=360))
        raw_rate = n / elapsed
        self.clear_parked()

        arkd_rate = float(self.inside("create", CLIENT_DIR, self.ce.socket, self.listing("create.txt", arkd_jobs),
                                      str(workers), str(CALL_TIMEOUT), user=True, timeout=n * CALL_TIMEOUT + 60))
        self.clear_parked()
        return arkd_rate, raw_rate

    def measure_notice(self, n: int, parallel: int) -> tuple[list[float], list[str]]:
        script = 'date +%s.%N > "$PWD/.ended"\n'
        latencies: list[float] = []
        grid_ids: list[str] = []
        for start in range(0, n, parallel):
            batch = []
            for _ in range(min(parallel, n - start)):
                time.sleep(random.random())
                job = self.new_job("default", script)
                result = self.ce.submit(job)  # the stdlib client as the mapped user; then INLRMS
                if result.returncode != 0:
                    sys.exit(f"submit failed: {result.stdout}{result.stderr}")
                batch.append(job)
            for job in batch:
                done = self.ce.controldir.job_file(job.grid_id, "lrms_done")
                deadline = time.monotonic() + NOTICE_TIMEOUT
                while not done.exists():
                    if time.monotonic() > deadline:
                        sys.exit(f"job {job.grid_id} never finished; arkd's journal:\n{self.journal()[-3000:]}")
                    time.sleep(0.02)
                ended = job.session / ".ended"
                if not ended.exists():
                    sys.exit(f"job {job.grid_id} ended ({done.read_text().strip()}) without writing .ended")
                latencies.append(done.stat().st_mtime - float(ended.read_text()))
                grid_ids.append(job.grid_id)
        return latencies, grid_ids

    # --- arkd's verbose log ------------------------------------------------------------------

    def set_verbose(self, on: bool) -> None:
        """Restart the arkd unit with --verbose appended (a runtime drop-in), or without it again."""
        self.ce.systemctl("stop", "arkd")
        dropin = None
        if on:
            unit = self.ce.outside("/etc/systemd/system/arkd.service").read_text()
            (exec_start,) = [l for l in unit.splitlines() if l.startswith("ExecStart=")]
            dropin = f"# bench/arkd.py: arkd's watch events for arkd_share\n[Service]\nExecStart=\n{exec_start} --verbose\n"
        self.ce.ce.runtime_dropin("arkd.service", VERBOSE_DROPIN, dropin)
        self.ce.start_arkd()
        self.verbose = on
        shown = self.ce.ce.run("systemctl", "show", "-p", "ExecStart", "arkd", timeout=30).stdout
        if on != ("--verbose" in shown):
            sys.exit(f"arkd's unit did not take the drop-in as expected: {shown}")

    def journal(self, since: float | None = None) -> str:
        argv = ["journalctl", "--no-pager", "-o", "cat", "-u", "arkd"]
        if since is not None:
            argv.append(f"--since=@{int(since) - 1}")
        return self.ce.ce.run(*argv, timeout=60).stdout

    def arkd_share(self, grid_ids: list[str], since: float) -> list[float]:
        """Per job: from the first watch event of its pod in Succeeded/Failed to its 'ended' record."""
        names = {g.lower()[:40]: g for g in grid_ids}
        deadline = time.monotonic() + 15  # journald may lag behind the last .lrms_done a little
        while True:
            seen: dict[str, datetime] = {}
            ended: dict[str, datetime] = {}
            for line in self.journal(since).splitlines():
                if m := re.match(r"(\S+ \S+) DEBUG \S+: MODIFIED pods \S+/ark-([0-9a-z]+)-[0-9a-f]{10}-[0-9a-z]+ "
                                 r"phase=(?:Succeeded|Failed)$", line):
                    if m.group(2) in names:
                        seen.setdefault(names[m.group(2)], datetime.strptime(m.group(1), STAMP))
                elif (m := re.match(r"(\S+ \S+) INFO \S+: job (\S+) ended:", line)) and m.group(2) in seen:
                    ended.setdefault(m.group(2), datetime.strptime(m.group(1), STAMP))
            if len(ended) == len(grid_ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if len(ended) < len(grid_ids):
            log(f"warning: arkd's log shows a pod-ended event then the record for {len(ended)} of "
                f"{len(grid_ids)} jobs; arkd_share is over those")
        if not ended:
            sys.exit("arkd's journal has no pod-ended watch event followed by an 'ended' record")
        return [(ended[g] - seen[g]).total_seconds() for g in grid_ids if g in ended]


def arc_conf_option(text: str, block: str, key: str) -> str:
    value = arcconf.option(text, block, key)
    if value is None:
        raise SystemExit(f"{ARC_CONF} has no {key} in [{block}]")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=40)
    parser.add_argument("--creates", type=int, default=150)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--notices", type=int, default=20)
    parser.add_argument("--no-arkd-verbose", dest="arkd_verbose", action="store_false",
                        help="leave the arkd unit as Salt installed it (no arkd_share figures)")
    args = parser.parse_args()

    with bench_site(PLAN, PILLAR, log) as (site, _work):
        with CeHost(site).standing_in_for_arex() as ce:
            bench = Bench(ce)
            try:
                log(f"==> submit-kubernetes-job x{args.submits}")
                submit = bench.measure_submit(args.submits)
                log(f"==> creating {args.creates} Jobs raw and through arkd")
                arkd_rate, raw_rate = bench.measure_create(args.creates, args.workers)
                if args.arkd_verbose:
                    log("==> arkd restarted with --verbose (runtime drop-in) for the notice jobs")
                    bench.set_verbose(True)
                since = time.time()
                log(f"==> {args.notices} jobs to measure the notice latency")
                notice, grid_ids = bench.measure_notice(args.notices, parallel=2)
                share = bench.arkd_share(grid_ids, since) if args.arkd_verbose else []
            finally:
                if bench.verbose:
                    bench.set_verbose(False)
    print(f"submit_p50_ms={percentile(submit, 50) * 1000:.1f}")
    print(f"submit_p99_ms={percentile(submit, 99) * 1000:.1f}")
    print(f"arkd_create_per_s={arkd_rate:.1f}")
    print(f"raw_create_per_s={raw_rate:.1f}")
    print(f"create_ratio={arkd_rate / raw_rate:.2f}")
    print(f"notice_p50_ms={percentile(notice, 50) * 1000:.1f}")
    print(f"notice_p99_ms={percentile(notice, 99) * 1000:.1f}")
    print(f"notice_max_ms={max(notice) * 1000:.1f}")
    print(f"notice_mean_ms={statistics.mean(notice) * 1000:.1f}")
    if share:
        print(f"arkd_share_p50_ms={percentile(share, 50) * 1000:.1f}")
        print(f"arkd_share_p99_ms={percentile(share, 99) * 1000:.1f}")


if __name__ == "__main__":
    main()
