"""ARK's demo: a grid site installed by Salt, and one grid job through it.

Boots Debian 12 hosts with systemd and sshd (systemd-nspawn, on a network of their own with no
route out): one host with every role, or with --site split a host per role (control plane,
registry, CE, and two workers). Serves them a files repository and an apt proxy as a site's own
mirrors would, and installs the site as its admin would: `ark init` writes the pillar from the
site's inventory, `ark deploy` installs Salt over SSH and applies highstate on each host in role
order (Kubernetes control plane and node, VO registry, A-REX with lrms = kubernetes, arkd), then
again (zero changes). Then it pushes the VO images as a VO manager would, submits a job with the
ARC client from outside the site, follows it to its pod and back, and tears everything down (or
keeps it running with --keep).
"""

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

from ark.saltresult import changed_labels

from .saltsite import SITES, grid_client, push_site_images, running_salt_site

JOB = """&(executable="/bin/sh")
 (arguments="-c" "echo running as uid $(id -u) in pod $(uname -n), image $(cat /etc/ark-image); tr a-z A-Z < greeting.txt > shout.txt")
 (runtimeenvironment="ENV/CONTAINER" "tools:2")
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
    parser.add_argument("--site", choices=SITES, default="all-in-one",
                        help="one host with every role (default), or split: control plane, registry, CE "
                             "and two workers on hosts of their own")
    args = parser.parse_args(argv)
    plan = SITES[args.site]

    work = Path(tempfile.mkdtemp(prefix="ark-demo-", dir="/tmp"))
    work.chmod(0o755)
    t0 = time.monotonic()
    with running_salt_site(plan, work, progress=step) as site:
        if not site.deployed.ok:
            raise SystemExit("ark deploy failed:\n" + "\n".join(site.deployed.errors))
        for name in site.hosts:
            step(f"highstate of {name}: {len(site.first[name][1])} states, then a re-apply with "
                 f"{len(changed_labels(site.second[name][1]))} changes")
        push_site_images(site, work, progress=step)
        arc = grid_client(site, work / "client")
        jobdir = work / "job"
        jobdir.mkdir()
        (jobdir / "greeting.txt").write_text("hello from the grid\n")
        step("arcsub: a job in VO alpha's image tools:2, with an input file and an output file, from outside the site")
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
        for spec in plan.hosts:
            host = site.hosts[spec.name]
            print(f"   host {spec.name} ({', '.join(spec.roles)}) at {host.address}: "
                  f"ssh -i {site.ssh_key} -o UserKnownHostsFile={site.known_hosts} root@{host.address}")
        print(f"   the site's inventory {site.inventory} and pillar {site.pillar}: edit the inventory, then "
              f"python3 -m ark init {site.inventory} --out {site.pillar} && python3 -m ark deploy {site.inventory} "
              f"--pillar {site.pillar} --ssh-key {site.ssh_key} --known-hosts {site.known_hosts}")
        control_plane = plan.with_role("control-plane").name
        print(f"   kubeconfig: /etc/ark/admin.kubeconfig on {control_plane} (kubectl inside the host)")
        print(f"   A-REX: {plan.arex_endpoint}; another job: arcsub -z {arc.conffile} -j {arc.joblist} "
              f"-C {plan.arex_endpoint} -T arcrest JOB.xrsl (under: unshare -m, with {arc.hosts_file} as /etc/hosts)")
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
