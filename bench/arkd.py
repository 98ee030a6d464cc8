"""arkd benchmark: prints name=value figures (see bench/run).

- submit_p50_ms / submit_p99_ms: wall time of the real submit-kubernetes-job, run as the mapped
  user by the same arguments A-REX uses (ARC's submit_common.sh builds the job script, then arkd
  checks and creates the Job).
- create_ratio: Jobs/s created through arkd's socket divided by Jobs/s of one raw
  `kubectl create -f` of the same manifests, measured in this run. Jobs are parked on a queue
  whose nodes do not exist, so pod start-up does not compete with the measurement.
- notice_p50_ms / notice_p99_ms: from the last instant of a container to `.lrms_done` existing
  on the CE. These jobs go straight to arkd's socket with a one-line script that ends by writing
  the time, so the figure is not blurred by the ARC job script's epilogue; their submissions
  are spread at random against the kubelet's 1 s status relist, which dominates the figure.
- arkd_share_p99_ms: of that, the part spent in arkd: from the watch event that shows the pod
  ended to `.lrms_done` written, read from arkd's own --verbose log.
"""

import argparse
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from arc_bridge.config import parse_config
from arc_bridge.grami import parse_grami, quote
from arc_bridge.job import job_from_grami
from arc_bridge.translate import Caller, build_job
from localsite.arex import build_arc_location
from localsite.bridge import apply_site_manifests, bridge_config, install_lrms, start_arkd
from localsite.cluster import running_cluster
from localsite.users import ensure_user

USER, UID = "ark-bench", 20021


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, cluster, work: Path):
        self.cluster, self.work = cluster, work
        self.uid, self.gid = ensure_user(USER, UID)
        self.arc = work / "arc"
        install_lrms(work / "lrms")
        build_arc_location(self.arc, {str(p.relative_to(work / "lrms")): p
                                      for p in (work / "lrms").rglob("*") if p.is_file()})
        config = bridge_config(cluster, work, {"alpha": [USER]})
        config["queues"]["parked"] = {"vos": ["alpha"], "node_selector": {"ark.nordugrid.org/queue": "nowhere"}}
        self.config_path = work / "bridge.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.config = parse_config(config)
        self.control = Path(config["controldir"])
        self.sessions = Path(config["session_roots"][0])
        for d in (self.control / "processing", self.sessions, work / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        (work / "tmp").chmod(0o1777)
        self.arc_conf = work / "arc.conf"
        self.arc_conf.write_text(
            f"[common]\n\n[arex]\ncontroldir = {self.control}\nsessiondir = {self.sessions}\n"
            f"tmpdir = {work / 'tmp'}\n\n[lrms]\nlrms = kubernetes\n\n[custom:kubernetes]\nsocket = {config['socket']}\n\n"
            "[queue:default]\n\n[queue:parked]\n")
        apply_site_manifests(cluster, self.config_path)
        self.arkd = start_arkd(self.config_path, work / "arkd.log", verbose=True)

    def new_job(self, queue: str, script_args: list[str]) -> tuple[str, Path]:
        grid_id = secrets.token_hex(12)
        session = self.sessions / grid_id
        session.mkdir(mode=0o700)
        os.chown(session, self.uid, self.gid)
        fields = {"directory": str(session), "controldir": str(self.control), "gridid": grid_id, "queue": queue,
                  "env_0": f"GRID_GLOBAL_JOBID=https://localhost/arex/{grid_id}", "memory": "32", "walltime": "300", "stdout": f"{session}/out", "stderr": f"{session}/err",
                  **{f"arg_{i}": a for i, a in enumerate(script_args)}}
        grami = self.control / f"job.{grid_id}.grami"
        grami.write_text("".join(f"joboption_{k}={quote(v)}\n" for k, v in fields.items()))
        os.chown(grami, self.uid, self.gid)
        (self.control / "processing" / f"job.{grid_id}.status").write_text("SUBMIT")
        return grid_id, grami

    def as_user(self, argv: list[str], pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "ARC_LOCATION": str(self.arc), "ARC_CONFIG": str(self.arc_conf),
               "TMPDIR": str(self.work / "tmp")}
        if pythonpath:
            env["PYTHONPATH"] = str(pythonpath)
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *argv],
                              capture_output=True, text=True, env=env)

    def submit_script(self, grami: Path) -> float:
        t0 = time.perf_counter()
        result = self.as_user([str(self.arc / "share/arc/submit-kubernetes-job"), "--config", str(self.arc_conf),
                               str(grami)])
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            sys.exit(f"submit-kubernetes-job failed: {result.stdout}{result.stderr[-2000:]}")
        return elapsed

    def clear_parked(self) -> None:
        self.cluster.kubectl("delete", "jobs", "-n", "ark-alpha", "-l", "ark.nordugrid.org/queue=parked",
                             "--wait=true")

    def measure_submit(self, n: int) -> list[float]:
        times = [self.submit_script(self.new_job("parked", ["/bin/true"])[1]) for _ in range(n)]
        self.clear_parked()
        return times

    def measure_create(self, n: int, workers: int) -> tuple[float, float]:
        script = "true\n"
        caller = Caller(self.uid, self.gid, USER)
        jobs = [self.new_job("parked", ["/bin/true"]) for _ in range(n)]
        manifests = [build_job(job_from_grami(parse_grami(g.read_bytes()), self.config), caller, self.config, script)
                     for _, g in jobs]
        for m in manifests:  # same objects, other names, so both runs create n new Jobs
            m["metadata"]["name"] = "raw-" + m["metadata"]["name"][4:]
        raw_file = self.work / "raw.yaml"
        raw_file.write_text(yaml.safe_dump_all(manifests))
        t0 = time.perf_counter()
        self.cluster.kubectl("create", "-f", str(raw_file))
        raw_rate = n / (time.perf_counter() - t0)
        self.clear_parked()

        driver = self.work / "driver.py"
        driver.write_text(DRIVER)
        listing = self.work / "gramis.txt"
        listing.write_text("\n".join(str(g) for _, g in jobs))
        out = self.as_user(["/usr/bin/python3", str(driver), str(self.work / "lrms" / "ark"), str(self.config.socket),
                            str(listing), str(workers)])
        if out.returncode != 0:
            sys.exit(f"arkd submits failed: {out.stdout}{out.stderr}")
        arkd_rate = float(out.stdout.strip())
        self.clear_parked()
        return arkd_rate, raw_rate

    def measure_notice(self, n: int, parallel: int) -> list[float]:
        script = self.work / "notice.sh"
        script.write_text('date +%s.%N > "$PWD/.ended"\n')
        latencies: list[float] = []
        for start in range(0, n, parallel):
            batch = []
            for _ in range(min(parallel, n - start)):
                time.sleep(random.random())
                grid_id, grami = self.new_job("default", ["/bin/true"])
                result = self.as_user(["/usr/bin/python3", "-S", "-m", "arc_bridge.client", "--socket",
                                       str(self.config.socket), "submit", str(grami), str(script)],
                                      pythonpath=self.work / "lrms" / "ark")
                if result.returncode != 0:
                    sys.exit(f"submit failed: {result.stdout}")
                (self.control / "processing" / f"job.{grid_id}.status").write_text("INLRMS")
                batch.append(grid_id)
            for grid_id in batch:
                done = self.control / f"job.{grid_id}.lrms_done"
                deadline = time.monotonic() + 120
                while not done.exists():
                    if time.monotonic() > deadline:
                        sys.exit(f"job {grid_id} never finished; see {self.work / 'arkd.log'}")
                    time.sleep(0.02)
                ended = float((self.sessions / grid_id / ".ended").read_text())
                latencies.append(done.stat().st_mtime - ended)
        return latencies

    def arkd_share(self) -> list[float]:
        """Per job: time from the first 'pod ended' watch event to the 'ended' record, from the log."""
        seen: dict[str, datetime] = {}
        shares = []
        for line in (self.work / "arkd.log").read_text().splitlines():
            stamp = line[:23]
            if m := re.search(r"MODIFIED pods \S+/ark-([0-9a-f]+)-\w+-\w+ phase=(Succeeded|Failed)", line):
                seen.setdefault(m.group(1)[:24], datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"))
            elif (m := re.search(r"job ([0-9a-f]+) ended", line)) and m.group(1)[:24] in seen:
                shares.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") - seen[m.group(1)[:24]]).total_seconds())
        return shares


DRIVER = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from arc_bridge.protocol import call
socket, gramis, workers = sys.argv[2], open(sys.argv[3]).read().split(), int(sys.argv[4])
def submit(path):
    reply = call(socket, {"op": "submit", "grami": open(path).read(), "script": "true\\n"})
    if not reply.get("ok"):
        raise SystemExit(reply)
t0 = time.perf_counter()
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(submit, gramis))
print(len(gramis) / (time.perf_counter() - t0))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submits", type=int, default=40)
    parser.add_argument("--creates", type=int, default=150)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--notices", type=int, default=20)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ark-bench-", dir="/tmp"))
    work.chmod(0o755)
    log = lambda msg: print(msg, file=sys.stderr)
    with running_cluster(work / "k8s", node_labels={"ark.nordugrid.org/queue": "default"},
                         vo_images=["vo-alpha/base:1"], progress=log) as cluster:
        bench = Bench(cluster, work)
        try:
            log(f"==> submit-kubernetes-job x{args.submits}")
            submit = bench.measure_submit(args.submits)
            log(f"==> creating {args.creates} Jobs raw and through arkd")
            arkd_rate, raw_rate = bench.measure_create(args.creates, args.workers)
            log(f"==> {args.notices} jobs to measure the notice latency")
            notice = bench.measure_notice(args.notices, parallel=2)
            share = bench.arkd_share()
        finally:
            bench.arkd.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"submit_p50_ms={percentile(submit, 50) * 1000:.1f}")
    print(f"submit_p99_ms={percentile(submit, 99) * 1000:.1f}")
    print(f"arkd_create_per_s={arkd_rate:.1f}")
    print(f"raw_create_per_s={raw_rate:.1f}")
    print(f"create_ratio={arkd_rate / raw_rate:.2f}")
    print(f"notice_p50_ms={percentile(notice, 50) * 1000:.1f}")
    print(f"notice_p99_ms={percentile(notice, 99) * 1000:.1f}")
    print(f"notice_max_ms={max(notice) * 1000:.1f}")
    print(f"notice_mean_ms={statistics.mean(notice) * 1000:.1f}")
    print(f"arkd_share_p50_ms={percentile(share, 50) * 1000:.1f}")
    print(f"arkd_share_p99_ms={percentile(share, 99) * 1000:.1f}")


if __name__ == "__main__":
    main()
