"""ARK against its peers: the same grid jobs through the same A-REX with three batch systems.

Prints name=value figures on stdout and progress on stderr (see bench/peers); writes the figures,
a plot of the turnaround distributions and every job's times (jobs.json) to --out.

One site of its own (every role on one systemd-nspawn test host, installed by Salt through
ark init + ark deploy, LAN 23 which no test and no other benchmark uses). Its A-REX 6.17 runs each
backend in turn, with everything else the same: one arc.conf, the one Salt wrote, with only its
[lrms] block changed (and, for Slurm, a queue named `default` renamed, a name Slurm reserves),
given to both A-REX units through a runtime drop-in (ARC_CONFIG, under the host's /run) and
restarted; the same certificates, the same grid user and the real ARC client on this machine:
- kubernetes: the site as deployed (arkd, the site's Kubernetes, the VO's image);
- fork: ARC's fork backend, jobs as processes on the CE host;
- slurm: ARC's SLURM backend, Debian's slurmctld, slurmd and munge (bench/slurm.py), one node
  with the host's CPUs, ARC's default slurm_wakeupperiod; started and stopped by the benchmark.

The job: /bin/sh sleeps 1 s, reads its input file (uploaded by arcsub) and writes its output
file (kept for arcget). Two loads per backend: a stream of --stream jobs, one arcsub each, one
after another; then a burst of --burst jobs in one arcsub. Each backend first runs one job that
is not measured (the VO image pulled, caches warm). When each job reached each step is
read from A-REX's control directory by an inotify watch (bench/controlwatch.py) on this
machine's clock, the clock arcsub is timed with.

Figures, per backend B:
- turnaround_p50_s_B, turnaround_p90_s_B, turnaround_max_s_B: stream jobs, from their arcsub
  returning to A-REX writing FINISHED;
- to_inlrms_p50_s_B (arcsub returned -> INLRMS), in_lrms_p50_s_B (INLRMS -> the backend reports
  the end, job.ID.lrms_done), to_finished_p50_s_B (-> FINISHED): the same, step by step;
- submit_script_p50_ms_B: the backend's submit script (submit-B-job), from A-REX writing the
  job's grami to the script appending the local id to it, over every job of both loads;
- arcsub_p50_s_B: wall time of one stream arcsub; burst_arcsub_s_B: of the burst's;
- burst_makespan_s_B: from the burst's arcsub starting to its last job FINISHED.
And ratio_p50_vs_fork, ratio_p50_vs_slurm (turnaround p50), ratio_burst_vs_best_peer (makespan
against the faster peer), ratio_submit_script_vs_fork: ARK's figure over the peer's, so < 1 is
ARK faster. The first stream job of each backend is fetched with arcget and its output checked.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from arc_bridge import arcconf
from localsite.arcclient import ArcClient, ArcClientError
from localsite.cehost import AREX_UNITS
from localsite.host import Host
from localsite.saltsite import ROLES, HostPlan, Lan, SaltSite, SitePlan, grid_client

from .arkd import arc_conf_option, percentile
from .controlwatch import ControlDirWatch, JobTimes
from .site import bench_site
from .slurm import SlurmNode

PLAN = SitePlan("peers", Lan(23), (HostPlan("ark-peers", 4, ROLES),))
# The example site, with VO alpha's quota above what the burst asks for: a Job its quota refuses
# waits in the Job controller's back-off (README, known limits), and a VO with the site to itself
# has no reason to cap itself below the site's size. Pods beyond the node's CPUs wait for room in
# the scheduler instead, as jobs wait in a batch system's queue.
PILLAR = {"vos": {"alpha": {"quota": {"cpu": "1000", "memory": "1000Gi"}}}}
BACKENDS = ("kubernetes", "fork", "slurm")
LRMS = {
    "kubernetes": "lrms = kubernetes\n",
    "fork": "lrms = fork\n",
    # No accounting database on the one node: job ends read with scontrol.
    "slurm": "lrms = slurm\nslurm_bin_path = /usr/bin\nslurm_use_sacct = no\n",
}
SLURM_RESERVED = {"default": "batch"}  # Slurm's PartitionName=DEFAULT sets defaults for the others
ARC_CONF = "/etc/arc.conf"
PEER_CONF = "/etc/ark-bench/arc.{backend}.conf"
DROPIN = "60-bench-peers"
INPUT = "hello from the grid\n"
PAYLOAD = "sleep 1; tr a-z A-Z < in.txt > out.txt"
READY_TIMEOUT = 180.0

log = lambda msg: print(msg, file=sys.stderr, flush=True)


def peer_arc_conf(text: str, backend: str) -> str:
    """arc.conf `text` with its [lrms] block for `backend`; for Slurm, queues renamed where Slurm
    cannot name a partition so."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("[") and header.endswith("]"):
            skipping = header == "[lrms]"
            if skipping:
                out += ["[lrms]\n", LRMS[backend], "\n"]
                continue
            name = header[1:-1]
            if backend == "slurm" and name.startswith("queue:") and name[6:] in SLURM_RESERVED:
                line = f"[queue:{SLURM_RESERVED[name[6:]]}]\n"
        if not skipping:
            out.append(line)
    if not any(l.strip() == "[lrms]" for l in out):
        raise ValueError("arc.conf has no [lrms] block")
    return "".join(out)


def queues(arc_conf: str) -> list[str]:
    return [name.removeprefix("queue:") for name in arcconf.blocks(arc_conf) if name.startswith("queue:")]


def xrsl(name: str) -> str:
    return (f'&(executable="/bin/sh")(arguments="-c" "{PAYLOAD}")(inputfiles=("in.txt" ""))'
            f'(outputfiles=("out.txt" ""))(jobname="{name}")(walltime="10 minutes")')


@dataclass
class Submitted:
    grid_id: str
    url: str
    started: float  # arcsub started
    returned: float  # arcsub returned


@dataclass
class Load:
    jobs: list[Submitted]
    times: dict[str, JobTimes]

    def finished(self, job: Submitted) -> float:
        return self.times[job.grid_id].states["FINISHED"]

    def turnarounds(self) -> list[float]:
        return [self.finished(j) - j.returned for j in self.jobs]

    def step(self, since: Callable[[Submitted, JobTimes], float], until: Callable[[Submitted, JobTimes], float]) -> list[float]:
        return [until(j, self.times[j.grid_id]) - since(j, self.times[j.grid_id]) for j in self.jobs]

    def submit_scripts(self) -> list[float]:
        return [t.submit_script_s for t in (self.times[j.grid_id] for j in self.jobs) if t.submit_script_s is not None]


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("inf")


class Peers:
    def __init__(self, site: SaltSite, client: ArcClient, work: Path):
        self.ce: Host = site.with_role("ce")
        self.client = client
        self.work = work
        self.arc_conf = (self.ce.root / ARC_CONF.lstrip("/")).read_text()
        self.watch = ControlDirWatch(self.ce.root / arc_conf_option(self.arc_conf, "arex", "controldir").lstrip("/"))
        self.watch.start()

    # --- A-REX with one backend ----------------------------------------------------------------

    def use(self, backend: str) -> None:
        """Both A-REX units restarted with arc.conf for `backend` (the file Salt wrote for
        kubernetes); returns once A-REX answers the grid user."""
        log(f"==> A-REX with lrms = {backend}")
        dropin = None
        if backend != "kubernetes":
            conf = self.ce.root / PEER_CONF.format(backend=backend).lstrip("/")
            conf.parent.mkdir(exist_ok=True)
            conf.write_text(peer_arc_conf(self.arc_conf, backend))
            dropin = f"# bench/peers.py\n[Service]\nEnvironment=ARC_CONFIG={PEER_CONF.format(backend=backend)}\n"
        for unit in AREX_UNITS:
            self.ce.runtime_dropin(f"{unit}.service", DROPIN, dropin)
        self.ce.output("systemctl", "restart", *reversed(AREX_UNITS), timeout=180)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.client.info(timeout=60)
                return
            except ArcClientError as error:
                if time.monotonic() > deadline:
                    sys.exit(f"A-REX with lrms = {backend} does not answer after {READY_TIMEOUT:.0f} s: {error}")
                time.sleep(2)

    # --- the loads -------------------------------------------------------------------------------

    def job_dir(self, name: str) -> Path:
        directory = self.work / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "in.txt").write_text(INPUT)
        return directory

    def stream(self, backend: str, n: int, name: str = "stream") -> Load:
        log(f"    {name}: {n} jobs, one arcsub each")
        cwd = self.job_dir(f"{backend}-{name}")
        jobs = []
        for i in range(n):
            started = time.time()
            url = self.client.submit(xrsl(f"{name}-{backend}-{i}"), cwd=cwd)
            jobs.append(Submitted(url.rsplit("/", 1)[-1], url, started, time.time()))
        return self.wait(jobs)

    def burst(self, backend: str, n: int) -> Load:
        log(f"    burst: {n} jobs in one arcsub")
        cwd = self.job_dir(f"{backend}-burst")
        path = cwd / "burst.xrsl"
        path.write_text("+" + "".join(f"({xrsl(f'burst-{backend}-{i}')})" for i in range(n)))
        started = time.time()
        urls = self.client.submit_file(path, n, cwd=cwd, timeout=60 + 5 * n)
        returned = time.time()
        return self.wait([Submitted(u.rsplit("/", 1)[-1], u, started, returned) for u in urls])

    def wait(self, jobs: list[Submitted]) -> Load:
        """Until A-REX has written FINISHED for every job; exits naming a job that failed."""
        deadline = time.monotonic() + 300 + 10 * len(jobs)
        pending = {j.grid_id for j in jobs}
        last = time.monotonic()
        while pending:
            for grid_id in list(pending):
                if "FINISHED" not in self.watch.times(grid_id).states:
                    continue
                # A-REX writes FINISHED for a failed job too, and why in its .failed file.
                failed = self.watch.layout.job_file(grid_id, "failed")
                if failed.exists():
                    errors = self.watch.layout.job_file(grid_id, "errors")
                    sys.exit(f"job {grid_id} failed: {failed.read_text().strip()}\n"
                             f"{errors.read_text()[-3000:] if errors.exists() else ''}")
                pending.discard(grid_id)
            if time.monotonic() > deadline:
                sys.exit(f"{len(pending)} of {len(jobs)} jobs not FINISHED in time, e.g. {sorted(pending)[0]}: "
                         f"{self.watch.times(sorted(pending)[0])}")
            if time.monotonic() - last > 30:
                last = time.monotonic()
                log(f"    ... {len(jobs) - len(pending)} of {len(jobs)} finished")
            time.sleep(0.2)
        if self.watch.overflowed:
            sys.exit("the control directory watch lost events (inotify queue overflow): figures unreliable")
        return Load(jobs, {j.grid_id: self.watch.times(j.grid_id) for j in jobs})

    def check_output(self, job: Submitted, backend: str) -> None:
        results = self.client.get(job.url, self.work / f"{backend}-get")
        got = (results / "out.txt").read_text()
        if got != INPUT.upper():
            sys.exit(f"{backend}: job {job.grid_id} wrote {got!r}, not {INPUT.upper()!r}")

    def clean(self) -> None:
        """Every job of this client removed from A-REX, so the next backend starts empty."""
        self.client.arc("arcclean", "-a", timeout=600)


def figures(backend: str, stream: Load, burst: Load) -> dict[str, float]:
    turn = stream.turnarounds()
    in_lrms = stream.step(lambda j, t: t.states["INLRMS"], lambda j, t: t.lrms_done or t.states["FINISHED"])
    scripts = stream.submit_scripts() + burst.submit_scripts()
    return {
        f"turnaround_p50_s_{backend}": statistics.median(turn),
        f"turnaround_p90_s_{backend}": percentile(turn, 90),
        f"turnaround_max_s_{backend}": max(turn),
        f"to_inlrms_p50_s_{backend}": statistics.median(stream.step(lambda j, t: j.returned, lambda j, t: t.states["INLRMS"])),
        f"in_lrms_p50_s_{backend}": statistics.median(in_lrms),
        f"to_finished_p50_s_{backend}": statistics.median(
            stream.step(lambda j, t: t.lrms_done or t.states["FINISHED"], lambda j, t: t.states["FINISHED"])),
        f"submit_script_p50_ms_{backend}": statistics.median(scripts) * 1000 if scripts else float("nan"),
        f"arcsub_p50_s_{backend}": statistics.median(j.returned - j.started for j in stream.jobs),
        f"burst_arcsub_s_{backend}": burst.jobs[0].returned - burst.jobs[0].started,
        f"burst_makespan_s_{backend}": max(burst.finished(j) for j in burst.jobs) - burst.jobs[0].started,
    }


def ratios(found: dict[str, float]) -> dict[str, float]:
    p50 = {b: found[f"turnaround_p50_s_{b}"] for b in BACKENDS}
    makespan = {b: found[f"burst_makespan_s_{b}"] for b in BACKENDS}
    return {
        "ratio_p50_vs_fork": ratio(p50["kubernetes"], p50["fork"]),
        "ratio_p50_vs_slurm": ratio(p50["kubernetes"], p50["slurm"]),
        "ratio_burst_vs_best_peer": ratio(makespan["kubernetes"], min(makespan["fork"], makespan["slurm"])),
        "ratio_submit_script_vs_fork": ratio(found["submit_script_p50_ms_kubernetes"], found["submit_script_p50_ms_fork"]),
    }


def raw_times(loads: dict[str, tuple[Load, Load]]) -> list[dict]:
    """Every job's times (epoch seconds), for a look at what a figure hides (its tail)."""
    return [{"backend": backend, "load": kind, "grid_id": job.grid_id, "arcsub_started": job.started,
             "arcsub_returned": job.returned, **asdict(load.times[job.grid_id])}
            for backend, pair in loads.items() for kind, load in zip(("stream", "burst"), pair) for job in load.jobs]


def plot(loads: dict[str, tuple[Load, Load]], path: Path) -> None:
    """Turnaround of the stream jobs (cumulative share) and the burst's completions over time."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for backend, (stream, burst) in loads.items():
        turn = sorted(stream.turnarounds())
        left.step(turn, [(i + 1) / len(turn) for i in range(len(turn))], where="post", label=backend)
        ends = sorted(burst.finished(j) - j.started for j in burst.jobs)
        right.step(ends, range(1, len(ends) + 1), where="post", label=backend)
    left.set(xscale="log", ylim=(0, 1.02), xlabel="arcsub returned → FINISHED (s, log)", ylabel="share of jobs",
             title=f"stream: {len(turn)} jobs, one arcsub each")
    right.set(ylim=(0, None), xlabel="since the burst's arcsub started (s)", ylabel="jobs FINISHED",
              title=f"burst: {len(ends)} jobs in one arcsub")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("A-REX 6.17, 1 s jobs with one input and one output file: three backends on one host")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", type=int, default=50, help="jobs in the stream, one arcsub each (default 50)")
    parser.add_argument("--burst", type=int, default=200, help="jobs in the burst's one arcsub (default 200)")
    parser.add_argument("--smoke", action="store_true", help="3 stream and 4 burst jobs: proves the benchmark runs")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="which backends, comma-separated (default all three; the ratios need all)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/peers"),
                        help="where figures.txt, turnaround.png and jobs.json go (default bench/out/peers)")
    args = parser.parse_args()
    stream_n, burst_n = (3, 4) if args.smoke else (args.stream, args.burst)
    if stream_n < 1 or burst_n < 1:
        parser.error("--stream and --burst need at least one job each")
    backends = args.backends.split(",")
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"--backends: unknown {', '.join(sorted(unknown))} (known: {', '.join(BACKENDS)})")
    args.out.mkdir(parents=True, exist_ok=True)

    found: dict[str, float] = {}
    loads: dict[str, tuple[Load, Load]] = {}
    with bench_site(PLAN, PILLAR, log) as (site, work):
        client = grid_client(site, work / "client")
        ce = site.with_role("ce")
        peers = Peers(site, client, work / "jobs")
        watch = peers.watch
        slurm = SlurmNode(ce, log)
        try:
            for backend in backends:
                if backend == "slurm":
                    slurm.install()
                    slurm.configure(site.plan.address(ce.name), queues(peer_arc_conf(peers.arc_conf, "slurm")))
                    slurm.start()
                peers.use(backend)
                # Not measured: the first job after a start warms what every later job finds warm
                # (the VO image on the node, A-REX's and the backend's caches, the page cache).
                peers.stream(backend, 1, "warm-up")
                stream = peers.stream(backend, stream_n)
                burst = peers.burst(backend, burst_n)
                peers.check_output(stream.jobs[0], backend)
                peers.clean()
                if backend == "slurm":
                    slurm.stop()
                loads[backend] = (stream, burst)
                found |= figures(backend, stream, burst)
                log("    " + " ".join(f"{k}={v:.3g}" for k, v in found.items() if k.endswith(backend)))
            peers.use("kubernetes")
        finally:
            watch.stop()
    if set(backends) == set(BACKENDS):
        found |= ratios(found)
    lines = [f"{name}={value:.4g}" for name, value in found.items()]
    (args.out / "figures.txt").write_text("\n".join(lines) + "\n")
    (args.out / "jobs.json").write_text(json.dumps(raw_times(loads), indent=1))
    plot(loads, args.out / "turnaround.png")
    print("\n".join(lines))
    log(f"==> figures and plot in {args.out}")


if __name__ == "__main__":
    main()
