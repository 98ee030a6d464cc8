"""ARK's demo: an all-in-one grid site installed by Salt, and one grid job through it.

Boots a Debian 12 host with systemd (systemd-nspawn, its own network namespace, no route out),
serves it a files repository and an apt proxy as a site's own mirrors would, applies highstate
with every role (Kubernetes control plane and node, VO registry, A-REX with lrms = kubernetes,
arkd), re-applies it (zero changes), pushes the VO image as a VO manager would, then submits a
job with the ARC client from outside the host, follows it to its pod and back, and tears
everything down (or keeps it running with --keep).
"""

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .host import changed_states
from .saltsite import AREX_ENDPOINT, HOST_NAME, grid_client, push_site_images, running_salt_site

JOB = """&(executable="/bin/sh")
 (arguments="-c" "echo running as uid $(id -u) in pod $(uname -n); tr a-z A-Z < greeting.txt > shout.txt")
 (inputfiles=("greeting.txt" ""))
 (outputfiles=("shout.txt" ""))
 (stdout="stdout.txt")
 (jobname="ark-demo")
"""


def step(message: str) -> None:
    print(message if message.startswith(("==>", "   ")) else f"==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the site running until Ctrl-C")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="ark-demo-", dir="/tmp"))
    work.chmod(0o755)
    t0 = time.monotonic()
    with running_salt_site(work, progress=step) as site:
        for run, (returncode, result) in (("first", site.first), ("second", site.second)):
            if returncode != 0:
                raise SystemExit(f"the {run} highstate failed; its result is in {work / f'{run}.json'}")
        step(f"highstate: {len(site.first[1])} states, then a re-apply with "
             f"{len(changed_states(site.second[1]))} changes ({site.timings['second_highstate']:.0f} s)")
        push_site_images(site.host, work, progress=step)
        arc = grid_client(site.host, work / "client")
        jobdir = work / "job"
        jobdir.mkdir()
        (jobdir / "greeting.txt").write_text("hello from the grid\n")
        step("arcsub: a job with an input file and an output file, from outside the site host")
        print(JOB)
        url = arc.submit(JOB, cwd=jobdir)
        step(f"submitted: {url}")
        seen, deadline = "", time.monotonic() + 300
        while (state := arc.status(url)) not in ("Finished", "Failed", "Killed"):
            if state != seen:
                step(f"arcstat: {state or '(not yet published)'}")
                seen = state
            if time.monotonic() > deadline:
                raise SystemExit(f"the job did not finish in 300 s; see {work}")
            time.sleep(1)
        step(f"arcstat: {state}")
        results = arc.get(url, work / "results")
        step(f"arcget: results in {results}")
        for name in ("stdout.txt", "shout.txt"):
            print(f"--- {name}\n{(results / name).read_text()}", end="")
        step(f"done in {time.monotonic() - t0:.0f} s. Where to look:")
        print(f"   site host: {HOST_NAME} at {site.host.address}, root {site.host.root}, "
              f"shell: nsenter -t {site.host.init_pid} -a bash")
        print(f"   kubeconfig: {site.host.root}/etc/ark/admin.kubeconfig (kubectl inside the host)")
        print(f"   A-REX: {AREX_ENDPOINT}; another job: arcsub -z {arc.conffile} -j {arc.joblist} "
              f"-C {AREX_ENDPOINT} -T arcrest JOB.xrsl (under: unshare -m, with {arc.hosts_file} as /etc/hosts)")
        if args.keep:
            step("site kept running; Ctrl-C stops it")
            signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, signals)
            signal.sigwait(signals)
        step("tearing down")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if state == "Finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
