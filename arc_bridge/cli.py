"""arc-bridge: the admin's and the infoprovider's command line."""

import argparse
import json
import pwd
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import protocol
from .config import Config, load_config
from .errors import BridgeError
from .grami import parse_grami
from .job import job_from_grami
from .manifests import cluster_objects
from .translate import Caller, build_job

PLACEHOLDER_SCRIPT = "# the ARC job script that submit-kubernetes-job builds goes here\n"
LRMS_FILES = ("submit-kubernetes-job", "scan-kubernetes-job", "cancel-kubernetes-job",
              "configure-kubernetes-env.sh", "ark-common.sh", "KUBERNETESmod.pm")
CLIENT_MODULES = ("__init__.py", "protocol.py", "arcconf.py", "client.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arc-bridge", description="Inspect and install ARK's A-REX/Kubernetes bridge.")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="print the Kubernetes Job a GRAMI file would become, or why it is refused")
    render.add_argument("--config", type=Path, required=True)
    render.add_argument("grami", type=Path)
    render.add_argument("--user", help="mapped local user (default: the first user of a VO the job's queue accepts)")
    render.add_argument("--uid", type=int, help="uid to run as (default: from the password database)")
    render.add_argument("--gid", type=int, help="gid to run as (default: from the password database)")
    render.add_argument("--script", type=Path, help="job script to embed (default: a placeholder)")

    manifests = sub.add_parser("manifests", help="print the namespaces, PriorityClasses, RBAC and pod security policy "
                               "the config expects")
    manifests.add_argument("--config", type=Path, required=True)
    manifests.add_argument("--user", default="arkd", help="Kubernetes user arkd authenticates as (default %(default)s)")

    for name, text in (("status", "show the jobs arkd is supervising"), ("info", "print arkd's infosys summary as JSON")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--socket", default=protocol.DEFAULT_SOCKET)

    install = sub.add_parser("install-lrms", help="install the submit/scan/cancel scripts and infoprovider module into ARC's pkgdatadir")
    install.add_argument("--dest", type=Path, default=Path("/usr/share/arc"), help="ARC pkgdatadir (default %(default)s)")

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BridgeError as e:
        print(f"arc-bridge: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"arc-bridge: {e}", file=sys.stderr)
        return 1


def cmd_render(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    job = job_from_grami(parse_grami(args.grami.read_bytes()), config)
    caller = _render_caller(args, config, job.queue)
    script = args.script.read_text() if args.script else PLACEHOLDER_SCRIPT
    yaml.safe_dump(build_job(job, caller, config, script), sys.stdout, sort_keys=False)
    return 0


def _render_caller(args: argparse.Namespace, config: Config, queue: str) -> Caller:
    user = args.user
    if user is None:
        vos = config.queues[queue].vos
        user = config.vos[vos[0]].users[0]
    if args.uid is not None and args.gid is not None:
        return Caller(args.uid, args.gid, user)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise BridgeError(f"local user {user!r} does not exist here: pass --uid and --gid") from None
    return Caller(entry.pw_uid if args.uid is None else args.uid, entry.pw_gid if args.gid is None else args.gid, user)


def cmd_manifests(args: argparse.Namespace) -> int:
    yaml.safe_dump_all(cluster_objects(load_config(args.config), args.user), sys.stdout, sort_keys=False)
    return 0


def _info(args: argparse.Namespace) -> dict[str, Any]:
    reply = protocol.call(args.socket, {"op": "info"})
    if not reply.get("ok"):
        raise BridgeError(reply.get("error", "arkd refused"))
    return reply["info"]


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(_info(args), indent=1, sort_keys=True))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = _info(args)
    print(f"cpus: {info['usedcpus']}/{info['totalcpus']} used, {info['runningjobs']} running, {info['queuedjobs']} queued")
    for name, node in sorted(info["nodes"].items()):
        state = "ready" if node["isavailable"] else "NOT READY"
        print(f"node {name}: {node['usedslots']}/{node['slots']} slots, {node['pmem']} MB, {state}")
    for name, job in sorted(info["jobs"].items()):
        print(f"job {name}: {job['status']} queue={job['queue']} cpus={job['cpus']} node={','.join(job['nodes']) or '-'}")
    return 0


def cmd_install_lrms(args: argparse.Namespace) -> int:
    """Copy the LRMS scripts and the stdlib-only client next to ARC's own backends.

    The client goes to <dest>/ark/arc_bridge/, readable by every mapped user, because the scripts
    run as those users and cannot see a virtualenv under /root.
    """
    package = resources.files("arc_bridge")
    client_dir = args.dest / "ark" / "arc_bridge"
    client_dir.mkdir(parents=True, exist_ok=True)
    for name in CLIENT_MODULES:
        _install(package / name, client_dir / name, 0o644)
    for name in LRMS_FILES:
        _install(package / "lrms" / name, args.dest / name, 0o644 if name.endswith((".pm", ".sh")) else 0o755)
    print(f"installed {len(LRMS_FILES)} LRMS files and the arkd client into {args.dest}")
    return 0


def _install(source: Any, dest: Path, mode: int) -> None:
    tmp = dest.with_name(dest.name + ".new")
    with source.open("rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.chmod(mode)
    tmp.replace(dest)


COMMANDS = {
    "render": cmd_render,
    "manifests": cmd_manifests,
    "status": cmd_status,
    "info": cmd_info,
    "install-lrms": cmd_install_lrms,
}

if __name__ == "__main__":
    sys.exit(main())
