"""ARK's demo: a local grid site on this machine, and one grid job through it, step by step.

Starts a real Kubernetes 1.20.2 (in its own network namespace), the VO image registry, arkd and
A-REX 6.17 with lrms = kubernetes; submits a job with the ARC client, follows it to its pod and
back, prints what came back, and tears everything down (or keeps it with --keep).
"""

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .cluster import running_cluster
from .site import running_grid_site

JOB = """&(executable="/bin/sh")
 (arguments="-c" "echo running as uid $(id -u) on node $(uname -n) in $PWD; tr a-z A-Z < greeting.txt > shout.txt")
 (inputfiles=("greeting.txt" ""))
 (outputfiles=("shout.txt" ""))
 (stdout="stdout.txt")
 (jobname="ark-demo")
 (walltime="10")
"""


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the site running until Ctrl-C")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ark-demo-", dir="/tmp"))
    work.chmod(0o755)
    t0 = time.monotonic()
    with running_cluster(work / "k8s", node_labels={"ark.nordugrid.org/queue": "default"},
                         vo_images=["vo-alpha/base:1"]) as cluster:
        step(f"Kubernetes is up: node {cluster.node_name} at {cluster.node_ip}, registry {cluster.registry}")
        with running_grid_site(cluster, work / "site") as arex:
            step(f"A-REX is up at {arex.endpoint} ({time.monotonic() - t0:.0f} s since start)")
            arc = arex.client()
            jobdir = work / "job"
            jobdir.mkdir()
            (jobdir / "greeting.txt").write_text("hello from the grid\n")
            step("arcsub: submitting a job with an input file and an output file")
            print(JOB)
            url = arc.submit(JOB, cwd=jobdir)
            step(f"submitted: {url}")
            seen = ""
            deadline = time.monotonic() + 300
            while (state := arc.status(url)) not in ("Finished", "Failed", "Killed"):
                if state != seen:
                    step(f"arcstat: {state or '(not yet published)'}")
                    seen = state
                    if state == "Running":
                        print(cluster.kubectl("get", "pods", "-n", "ark-alpha", "-o", "wide").stdout)
                if time.monotonic() > deadline:
                    raise SystemExit(f"the job did not finish in 300 s; see {work}")
                time.sleep(1)
            step(f"arcstat: {state}")
            results = arc.get(url, work / "results")
            step(f"arcget: results in {results}")
            for name in ("stdout.txt", "shout.txt"):
                print(f"--- {name}\n{(results / name).read_text()}", end="")
            if args.keep:
                step(f"site kept running: kubeconfig {cluster.kubeconfig}, A-REX {arex.endpoint}; Ctrl-C stops it")
                signals = {signal.SIGINT, signal.SIGTERM}
                signal.pthread_sigmask(signal.SIG_BLOCK, signals)
                signal.sigwait(signals)
            step("tearing down")
    shutil.rmtree(work, ignore_errors=True)
    step(f"done in {time.monotonic() - t0:.0f} s")
    return 0 if state == "Finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
