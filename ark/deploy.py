"""`ark deploy`: install the site on its hosts over SSH, as the inventory describes them.

For every host of the inventory (ansible-runner with ark/playbooks/deploy.yml, SSH as the
inventory says):
1. Salt (the version salt/ark/versions.yaml names, key `salt`) in a virtualenv /opt/salt: exactly
   the wheels pillar ark:wheels:salt lists, from the site's files repository (pillar
   ark:files_repo), each checked against its sha256 there (pip --require-hashes); skipped when
   that version is there already. Debian's python3-venv must be installed.
2. The Salt tree to /srv/ark/salt and the pillar tree (the *.sls files `ark init` writes) to
   /srv/ark/pillar, root only; /etc/salt/minion names the host (minion id = inventory name) and
   the two trees, masterless.
3. `salt-call --local state.highstate` in role order: the control-plane host, the registry, the
   workers (in parallel), the CE; a host with several roles runs once, in the group of its first
   role. Then the same again, which must change nothing.

With a Salt master (inventory site.salt_master; ark/playbooks/deploy-master.yml), step 2 puts the
trees on the master alone, which runs salt-master; every host runs a salt-minion that knows the
master by its key's fingerprint, and the master accepts exactly the minion keys ark read over SSH.
Step 3 is the master's orchestrate (salt/orch/site.sls, the same groups in the same order, which
ark init writes into pillar ark_orchestrate), twice.

SSH host keys: a host with `ssh_host_key` in the inventory must show that key. Any other host's
key is recorded on first contact in KNOWN_HOSTS (default: `known_hosts` beside the pillar
directory, i.e. beside the inventory when the pillar is ark init's default) and must stay the same
from then on. Either way a host that shows another key is refused before anything is sent to it.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

from . import saltresult
from .errors import ArkError
from .inventory import role_groups
from .saltresult import HighstateResult

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
PASSES = ("first", "second")
# The steps of salt/orch/site.sls: the CA server first, then one highstate per role group.
ORCH_CA_STEP = "ark-ca-server"
ORCH_GROUP_STEP = "ark-highstate-"
# Inside each host.
SALT_VENV = "/opt/salt"
SALT_ROOTS = "/srv/ark/salt"
PILLAR_ROOTS = "/srv/ark/pillar"
HIGHSTATE_TIMEOUT = 1800  # seconds; the first highstate of a host downloads its packages
# Host keys that show a host is not the one ark knows (ssh's own words).
HOST_KEY_CHANGED = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed")

Progress = Callable[[str], None]


class DeployError(ArkError):
    """The deploy stopped: the message names the host and what failed there."""


class InventoryHost(Protocol):
    """What deploy needs of a host (ark.inventory.Host)."""

    name: str
    address: str
    roles: tuple[str, ...]
    ssh_user: str
    ssh_port: int
    ssh_host_key: str | None


class HasHosts(Protocol):
    hosts: tuple[InventoryHost, ...]
    salt_master: str | None  # the host running salt-master; None: masterless


@dataclass
class DeployResult:
    # Per pass ("first", "second"), per host name: (salt-call's exit code, its highstate result:
    # the states, or render errors as a list, or None when salt-call printed no JSON). A host
    # whose pass did not run (an earlier failure stopped the deploy) has no entry.
    highstates: dict[str, dict[str, tuple[int, HighstateResult]]] = field(
        default_factory=lambda: {run: {} for run in PASSES})
    errors: list[str] = field(default_factory=list)  # one line each, naming the host
    timings: dict[str, float] = field(default_factory=dict)  # "HOST: STEP" -> seconds, and "total"

    @property
    def first(self) -> dict[str, tuple[int, HighstateResult]]:
        return self.highstates["first"]

    @property
    def second(self) -> dict[str, tuple[int, HighstateResult]]:
        return self.highstates["second"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def check(self) -> None:
        """Raise DeployError naming every failure (one line each, joined)."""
        if self.errors:
            raise DeployError("; ".join(self.errors))


# --- what goes to the hosts ------------------------------------------------------------------


def salt_version(salt_dir: Path) -> str:
    """The Salt release the states are written for: key `salt` of salt/ark/versions.yaml."""
    path = salt_dir / "ark" / "versions.yaml"
    try:
        version = (yaml.safe_load(path.read_text()) or {}).get("salt")
    except (OSError, yaml.YAMLError) as e:
        raise ArkError(f"cannot read the Salt version from {path}: {e}") from None
    if not isinstance(version, str) or not version:
        raise ArkError(f"{path} has no Salt version (key salt, e.g. \"3008.4\")")
    return version


def group_name(role: str) -> str:
    return "ark_" + role.replace("-", "_")


def pillar_value(pillar_dir: Path, minion_id: str, path: str) -> Any:
    """The value Salt's pillar would give minion `minion_id` for `path` ("ark:files_repo")."""
    return pillar_lookup(host_pillar(pillar_dir, minion_id), path)


def pillar_lookup(pillar: dict[str, Any], path: str) -> Any:
    """The value at `path` ("ark:files_repo") of a pillar; None when it has no such key."""
    value: Any = pillar
    for key in path.split(":"):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def host_pillar(pillar_dir: Path, minion_id: str) -> dict[str, Any]:
    """The pillar Salt would give minion `minion_id`: the files top.sls assigns it (glob targets),
    merged in order, the later key by key over the earlier. Enough for the plain YAML pillar ark
    init writes."""
    from .inventory import merge

    top = _read_sls(pillar_dir / "top.sls")
    merged: dict[str, Any] = {}
    for target, names in ((top or {}).get("base") or {}).items():
        if not fnmatch.fnmatchcase(minion_id, str(target)):
            continue
        for name in names or []:
            if not isinstance(name, str):
                continue  # {match: ...} options: not used by ark's pillars
            relative = Path(*name.split("."))
            sls = pillar_dir / relative.with_suffix(".sls")
            if not sls.exists():
                sls = pillar_dir / relative / "init.sls"
            document = _read_sls(sls)
            if isinstance(document, dict):
                merged = merge(merged, document)
    return merged


def _read_sls(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise ArkError(f"pillar {path}: cannot read it: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ArkError(f"pillar {path}: not plain YAML (ark deploy reads ark:files_repo from it): {e}") from None


SALT_REQUIREMENTS = f"{SALT_VENV}/ark-requirements.txt"


def salt_requirements(files_repo: str, wheels: Mapping[str, str]) -> str:
    """Salt and every wheel it installs with, by URL, each with its sha256 from pillar ark:wheels:salt:
    what pip --require-hashes installs, whatever the files server says."""
    base = files_repo.rstrip("/")
    return "".join(f"{base}/{name} --hash=sha256:{sha256}\n" for name, sha256 in sorted(wheels.items()))


def pip_install(files_repo: str) -> list[str]:
    """The command that installs the wheels SALT_REQUIREMENTS lists, and nothing else."""
    argv = [f"{SALT_VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--require-hashes", "-r", SALT_REQUIREMENTS]
    url = urlsplit(files_repo)
    if url.scheme == "http" and url.hostname:
        argv += ["--trusted-host", url.hostname]  # plain HTTP inside the site, as the formulas do
    return argv


def salt_wheels(pillar_dir: Path, host: str, version: str) -> dict[str, str]:
    """Pillar ark:wheels:salt for `host`, checked: it must hold Salt `version`'s wheel."""
    wheels = pillar_value(pillar_dir, host, "ark:wheels:salt")
    if not isinstance(wheels, dict) or not any(str(name).startswith(f"salt-{version}-") for name in wheels):
        raise ArkError(f"pillar {pillar_dir} gives host {host} no ark:wheels:salt with Salt {version}'s wheel: "
                       "merge the pillar.yaml of ark bundle into the inventory's site settings")
    for name, sha256 in sorted(wheels.items()):
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+\.whl", str(name)):
            raise ArkError(f"pillar ark:wheels:salt:{name}: not a wheel file name")
        if not re.fullmatch(r"[0-9a-f]{64}", str(sha256)):
            raise ArkError(f"pillar ark:wheels:salt:{name}: not a sha256 (64 lower-case hex digits)")
    return {str(name): str(sha256) for name, sha256 in wheels.items()}


def minion_config(name: str, options: Mapping[str, Any] | None = None, master: str | None = None) -> str:
    """/etc/salt/minion: minion id = inventory name, masterless, or with the master at address
    `master` (deploy-master.yml adds its key's fingerprint); `options` are added (e.g.
    {"systemd.scope": False} where `systemd-run --scope` does not work, as in ARK's test hosts)."""
    where = ({"master": master} if master else
             {"file_client": "local", "file_roots": {"base": [SALT_ROOTS]}, "pillar_roots": {"base": [PILLAR_ROOTS]}})
    return yaml.safe_dump({"id": name, **where, **(options or {})}, default_flow_style=False)


def master_config(address: str) -> str:
    """/etc/salt/master: the trees salt.yml puts on the master, served on the host's site address.
    Keys are accepted by deploy-master.yml alone (Salt's default: no auto_accept). Minions may
    ask the CA server (the master's own minion) to sign a certificate; its signing policies
    (salt/kubernetes/signing.sls) decide what each one gets."""
    return yaml.safe_dump({
        "interface": address,
        "file_roots": {"base": [SALT_ROOTS]},
        "pillar_roots": {"base": [PILLAR_ROOTS]},
        "peer": {".*": ["x509.sign_remote_certificate"]},
    }, default_flow_style=False)


def master_vars(master: str, minions: list[str]) -> dict[str, Any]:
    """deploy-master.yml's extra variables."""
    return {"ark_master": master, "ark_minions": minions,
            "ark_unit_master": unit("Salt master", "salt-master"),
            "ark_unit_minion": unit("Salt minion", "salt-minion")}


def unit(description: str, command: str) -> str:
    """A systemd unit running one of the virtualenv's Salt daemons in the foreground."""
    return "\n".join([
        "[Unit]",
        f"Description={description} (Salt in {SALT_VENV}, installed by ark deploy)",
        "Wants=network-online.target",
        "After=network-online.target",
        "[Service]",
        f"ExecStart={SALT_VENV}/bin/{command}",
        # Salt's own units: a state run the minion forked outlives a restart of the daemon.
        "KillMode=process",
        "Restart=on-failure",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def write_tar(source: Path, target: Path, *, private: bool, only: str | None = None) -> None:
    """`source`'s files as a tar (names relative to it), owned by root, modes 0644/0755, or
    0600/0700 if `private`; `only`: a glob the files must match (e.g. "*.sls"). The same tree
    gives the same bytes, so an unchanged tree is not unpacked on the hosts again."""
    file_mode, dir_mode = (0o600, 0o700) if private else (0o644, 0o755)
    paths = sorted(p for p in source.rglob("*") if "__pycache__" not in p.parts and not p.name.endswith(".pyc"))
    files = [p for p in paths if p.is_file() and (only is None or fnmatch.fnmatchcase(p.name, only))]
    dirs = sorted({parent for p in files for parent in p.relative_to(source).parents if parent != Path(".")})
    if not files:
        raise ArkError(f"{source} has no files to deploy" + (f" ({only})" if only else ""))
    with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as tar:
        for directory in dirs:
            info = _tarinfo(str(directory), tarfile.DIRTYPE, dir_mode, int((source / directory).stat().st_mtime))
            tar.addfile(info)
        for path in files:
            data = path.read_bytes()
            info = _tarinfo(str(path.relative_to(source)), tarfile.REGTYPE, file_mode, int(path.stat().st_mtime))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target.chmod(0o600)


def _tarinfo(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


# --- SSH -------------------------------------------------------------------------------------


def default_known_hosts(pillar_dir: Path) -> Path:
    """Where ark records host keys on first contact: `known_hosts` beside the pillar directory
    (beside the inventory, with ark init's default pillar/)."""
    return pillar_dir.resolve().parent / "known_hosts"


def is_recorded(known_hosts: Path, name: str) -> bool:
    """Whether ark has recorded a key for host `name` (ssh's HostKeyAlias) in `known_hosts`."""
    if not known_hosts.exists():
        return False
    result = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known_hosts)], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


def ssh_options(host: InventoryHost, *, known_hosts: Path, pinned: Path, recorded: bool,
                ssh_key: Path | None) -> list[str]:
    """ssh options for `host`: the inventory's key (pinned file, strict), else ark's known_hosts,
    recorded on first contact (accept-new) and strict from then on. Keys are filed under the
    inventory name (HostKeyAlias), so a new address or port does not lose them."""
    if host.ssh_host_key:
        known, strict = pinned, "yes"
    else:
        known, strict = known_hosts, "yes" if recorded else "accept-new"
    options = [
        f"UserKnownHostsFile={known}",
        "GlobalKnownHostsFile=/dev/null",
        f"StrictHostKeyChecking={strict}",
        f"HostKeyAlias={host.name}",
        "HashKnownHosts=no",  # the admin can read which host a line is for
        "BatchMode=yes",  # never a password prompt: ark logs in with a key
    ]
    if ssh_key:
        options.append("IdentitiesOnly=yes")
    return [arg for option in options for arg in ("-o", option)]


def pinned_known_hosts(hosts: Iterable[InventoryHost]) -> str:
    return "".join(f"{h.name} {h.ssh_host_key}\n" for h in hosts if h.ssh_host_key)


def ansible_inventory(hosts: Sequence[InventoryHost], *, files_repo: dict[str, str],
                      wheels: dict[str, dict[str, str]], known_hosts: Path, pinned: Path, ssh_key: Path | None,
                      minion_options: Mapping[str, Any] | None = None, master: str | None = None) -> dict[str, Any]:
    """The inventory ansible-runner gets: each host's SSH settings and deploy variables, grouped
    by its first role (deploy.yml runs the groups in HIGHSTATE_ORDER), and with a `master` (a host's
    name) the group ark_salt_master of that host (deploy-master.yml)."""
    master_address = next(h.address for h in hosts if h.name == master) if master else None
    entries: dict[str, dict[str, Any]] = {}
    for host in hosts:
        entry: dict[str, Any] = {
            "ansible_host": host.address,
            "ansible_port": host.ssh_port,
            "ansible_user": host.ssh_user,
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": shlex.join(ssh_options(
                host, known_hosts=known_hosts, pinned=pinned, recorded=is_recorded(known_hosts, host.name),
                ssh_key=ssh_key)),
            "ark_pip_install": pip_install(files_repo[host.name]),
            "ark_salt_requirements": salt_requirements(files_repo[host.name], wheels[host.name]),
            "ark_minion_config": minion_config(host.name, minion_options, master_address),
            "ark_trees": master in (None, host.name),
        }
        if host.name == master:
            entry["ark_master_config"] = master_config(host.address)
        if ssh_key:
            entry["ansible_ssh_private_key_file"] = str(ssh_key)
        if host.ssh_user != "root":
            entry["ansible_become"] = True  # sudo without a password
        entries[host.name] = entry
    children = {group_name(role): {"hosts": {name: {} for name in names}} for role, names in role_groups(hosts).items()}
    if master:
        children["ark_salt_master"] = {"hosts": {master: {}}}
    return {"all": {"hosts": entries, "children": children}}


# --- events → progress and results -----------------------------------------------------------


@dataclass
class _Step:
    started: float
    changed: bool = False


class Events:
    """Turns ansible-runner's events into progress lines (one per host and step), the highstate
    results, and the error lines. A task named "STEP" ends a step, "STEP: detail" is part of it."""

    def __init__(self, hosts: Sequence[InventoryHost], progress: Progress, *, known_hosts: Path,
                 clock: Callable[[], float] = time.monotonic):
        self.hosts = {h.name: h for h in hosts}
        self.progress = progress
        self.known_hosts = known_hosts
        self.clock = clock
        self.result = DeployResult()
        self.steps: dict[tuple[str, str], _Step] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host, task = data.get("host"), data.get("task") or ""
        if not host or not kind.startswith("runner_on_") or kind.startswith("runner_on_async"):
            return False  # nothing kept in runner's artifacts: the results are ours
        step, _, detail = task.partition(": ")
        key = (host, step)
        if kind == "runner_on_start":
            self.steps.setdefault(key, _Step(self.clock()))
            if step.startswith("orchestrate"):  # one long step: say what it waits for
                self.progress(f"==> {host}: {step}: highstate of every host in role order, from the master "
                              "(minutes on a new site; salt-run jobs.active on the master shows the running one)")
            return False
        state = self.steps.setdefault(key, _Step(self.clock()))
        res = data.get("res") or {}
        state.changed |= bool(res.get("changed"))
        final = not detail
        if kind == "runner_on_unreachable":
            self._error(host, self._unreachable(host, res))
            self._line(host, step, state, "unreachable")
        elif step.startswith("orchestrate") and kind in ("runner_on_ok", "runner_on_failed"):
            self._orchestrate(host, step, state, res)
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                return False
            if step.startswith("highstate"):
                self._highstate(host, step, state, res, failed=True)
            else:
                self._error(host, f"{task} failed: {_task_message(res)}")
                self._line(host, step, state, "failed")
        elif step.startswith("highstate") and kind == "runner_on_ok":
            self._highstate(host, step, state, res, failed=False)
        elif final and kind in ("runner_on_ok", "runner_on_skipped"):
            if step.startswith("salt "):
                done = "installed" if state.changed else "already installed"
            else:
                done = "changed" if state.changed else "unchanged"
            self._line(host, step, state, f"ok, {done}")
        return False

    def _highstate(self, host: str, step: str, state: _Step, res: dict[str, Any], *, failed: bool) -> None:
        returncode = _returncode(res)
        result = saltresult.parse(res.get("stdout", ""))
        if result is None and res.get("msg") and not res.get("stderr"):
            why = f"{step} did not finish: {_task_message(res)}"  # a timeout, a lost connection
        else:
            why = f"{step}: {saltresult.failure(result, returncode, res.get('stderr', ''))}"
        self._outcome(host, step, state, returncode, result, failed=failed, why=why)

    def _orchestrate(self, master: str, step: str, state: _Step, res: dict[str, Any]) -> None:
        """The master's orchestrate: each host's highstate as if it had run on its own."""
        returncode = _returncode(res)
        steps = saltresult.parse_orchestrate(res.get("stdout", ""))
        if steps is None or (steps and isinstance(steps[0], str)):
            if steps:
                why = f"{step}: orch.site does not render: {saltresult.one_line(steps[0])}"
            elif res.get("msg") and not res.get("stderr"):
                why = f"{step} did not finish: {_task_message(res)}"
            else:
                why = f"{step}: salt-run exited with {returncode} without a result: " \
                      f"{saltresult.last_line(res.get('stderr', '')) or 'no output'}"
            self._error(master, why)
            self._line(master, step, state, "failed")
            return
        groups = role_groups(self.hosts.values())
        highstate = step.replace("orchestrate", "highstate", 1)
        errors = len(self.result.errors)
        for group in steps:
            assert isinstance(group, saltresult.OrchestrateStep)
            if not group.ran:
                continue
            if group.id == ORCH_CA_STEP:
                for host, result in group.minions.items():
                    if result is None or not saltresult.summarize(result).ok:
                        self._error(host, f"{step}: the site CA and its signing policies: " + (
                            "the minion did not answer the master" if result is None else saltresult.failure(result, 1)))
                continue
            for host in groups.get(group.id.removeprefix(ORCH_GROUP_STEP), []):
                # A minion whose highstate changed nothing is not in the step's result.
                result = group.minions[host] if host in group.minions else {}
                if result is None:
                    why = f"{highstate}: the minion did not answer the master (is salt-minion running there?)"
                else:
                    why = f"{highstate}: {saltresult.failure(result, 1)}"
                ok = result is not None and saltresult.summarize(result).ok
                self._outcome(host, highstate, state, 0 if ok else 1, result, failed=not ok, why=why)
        if len(self.result.errors) == errors and (returncode != 0 or not all(g.ok for g in steps)):
            failed = next((g for g in steps if not g.ok), None)
            self._error(master, f"{step} failed: {saltresult.one_line(failed.comment) if failed else f'exit {returncode}'}")
        self._line(master, step, state, "ok" if len(self.result.errors) == errors else "failed")

    def _outcome(self, host: str, step: str, state: _Step, returncode: int, result: HighstateResult, *,
                 failed: bool, why: str) -> None:
        run = "second" if "second" in step else "first"
        self.result.highstates[run][host] = (returncode, result)
        summary = saltresult.summarize(result)
        counts = f"{summary.states} states, {len(summary.changed)} changed"
        # No JSON from salt-call is no proof of anything, whatever its exit code.
        if failed or returncode != 0 or result is None or not summary.ok:
            self._error(host, why)
            self._line(host, step, state, f"failed, {counts}, {len(summary.failed)} failed"
                       if summary.states else "failed")
            return
        if run == "second" and summary.changed:
            labels = saltresult.changed_labels(result)
            shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
            self._error(host, f"{step} changed {len(labels)} states, expected none: {shown}")
            self._line(host, step, state, f"failed, {counts} (expected none)")
            return
        self._line(host, step, state, f"ok, {counts}" if summary.states else "ok, nothing changed")

    def _unreachable(self, host: str, res: dict[str, Any]) -> str:
        spec = self.hosts.get(host)
        message = str(res.get("msg", ""))
        where = f"{spec.ssh_user}@{spec.address}:{spec.ssh_port}" if spec else host
        if any(text in message for text in HOST_KEY_CHANGED):
            if spec and spec.ssh_host_key:
                return (f"the SSH host key of {where} is not hosts.{host}.ssh_host_key of the inventory: refusing "
                        "to connect (if the host was reinstalled, put its new key in the inventory)")
            return (f"the SSH host key of {where} is not the one ark recorded in {self.known_hosts}: refusing to "
                    f"connect (if the host was reinstalled, remove the line for {host} from that file)")
        return f"cannot log in over SSH as {where}: {saltresult.last_line(message) or 'no message'}"

    def _line(self, host: str, step: str, state: _Step, outcome: str) -> None:
        seconds = self.clock() - state.started
        self.result.timings[f"{host}: {step}"] = seconds
        self.progress(f"==> {host}: {step} ... {outcome}, {seconds:.0f} s")

    def _error(self, host: str, message: str) -> None:
        self.result.errors.append(f"{host}: {message}")


def _returncode(res: dict[str, Any]) -> int:
    """The command's exit code in a task result; -1 when it has none (it did not run to the end)."""
    return int(res["rc"]) if res.get("rc") is not None else -1


def _task_message(res: dict[str, Any]) -> str:
    """Why a task failed, in one line; for a loop, why its first failed item did."""
    failed_items = [item for item in res.get("results") or [] if isinstance(item, dict) and item.get("failed")]
    if failed_items:
        item = failed_items[0]
        label = (item.get("_ansible_item_label") if isinstance(item.get("_ansible_item_label"), str)
                 else None)
        return (f"{label}: " if label else "") + _task_message(item)
    stderr = saltresult.last_line(res.get("stderr", ""))
    if "ensurepip is not available" in (res.get("stdout", "") + res.get("stderr", "")):
        return "python3 -m venv does not work: install Debian's python3-venv on the host first"
    return stderr or saltresult.one_line(res.get("msg", "")) or f"exit {res.get('rc')}"


# --- the deploy ------------------------------------------------------------------------------


def deploy(
    inventory: HasHosts,
    pillar_dir: Path,
    salt_dir: Path,
    *,
    ssh_key: Path | None = None,
    known_hosts: Path | None = None,
    progress: Progress = print,
    highstate_timeout: int = HIGHSTATE_TIMEOUT,
    minion_options: Mapping[str, Any] | None = None,
) -> DeployResult:
    """Deploy the site to every host of `inventory` (ark.inventory.Inventory: its hosts' names,
    addresses, SSH settings and roles) with the pillar tree `pillar_dir` (as ark init writes it)
    and the Salt tree `salt_dir`. `known_hosts`: where host keys without an inventory entry are
    recorded (default_known_hosts(pillar_dir)); `minion_options`: more /etc/salt/minion settings
    (minion_config). Returns the highstate results and the error lines;
    raises ArkError only for what stops it before any host is contacted."""
    try:
        import ansible_runner  # the admin extra: not installed on the hosts themselves
    except ImportError:
        raise ArkError("ark deploy needs ansible-runner and ansible-core: pip install 'arc-bridge[admin]'") from None

    started = time.monotonic()
    hosts = list(inventory.hosts)
    if not hosts:
        raise ArkError("the inventory has no hosts")
    version = salt_version(salt_dir)
    known_hosts = (known_hosts or default_known_hosts(pillar_dir)).resolve()
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    files_repo = {}
    for host in hosts:
        repo = pillar_value(pillar_dir, host.name, "ark:files_repo")
        if not isinstance(repo, str) or not repo:
            raise ArkError(f"pillar {pillar_dir} gives host {host.name} no ark:files_repo: the site's files "
                           "repository, which holds Salt's wheels")
        files_repo[host.name] = repo
    wheels = {host.name: salt_wheels(pillar_dir, host.name, version) for host in hosts}
    if ssh_key and not ssh_key.is_file():
        raise ArkError(f"SSH key {ssh_key} does not exist")
    groups = role_groups(hosts)
    master = inventory.salt_master
    progress(f"==> deploying Salt {version} and the site to {len(hosts)} hosts"
             + (f", a salt-master on {master} orchestrating" if master else "") + ", highstate in this order: "
             + "; ".join(f"{role}: {', '.join(names)}" for role, names in groups.items() if names))
    events = Events(hosts, progress, known_hosts=known_hosts)
    with tempfile.TemporaryDirectory(prefix="ark-deploy-") as tmp:
        work = Path(tmp)
        pinned = work / "pinned_known_hosts"
        pinned.write_text(pinned_known_hosts(hosts))
        write_tar(salt_dir, work / "salt.tar", private=False)
        write_tar(pillar_dir, work / "pillar.tar", private=True, only="*.sls")
        (work / "runner").mkdir()
        config = work / "ansible.cfg"
        config.write_text(_ansible_cfg(work, forks=len(hosts)))
        try:
            runner = ansible_runner.run(
                private_data_dir=str(work / "runner"),
                project_dir=str(PLAYBOOKS),
                playbook="deploy-master.yml" if master else "deploy.yml",
                inventory=ansible_inventory(hosts, files_repo=files_repo, wheels=wheels, known_hosts=known_hosts,
                                            pinned=pinned, ssh_key=ssh_key, minion_options=minion_options,
                                            master=master),
                extravars={
                    "ark_salt_version": version,
                    "ark_salt_tar": str(work / "salt.tar"),
                    "ark_pillar_tar": str(work / "pillar.tar"),
                    "ark_highstate_timeout": highstate_timeout,
                    **(master_vars(master, [h.name for h in hosts]) if master else {}),
                },
                envvars=runner_env(config),
                event_handler=events,
                quiet=True,
                suppress_env_files=True,
            )
        finally:
            _close_ssh_masters(work / "cp")
        result = events.result
        # Inside the block: runner.stdout lives in the temporary directory.
        if runner.status != "successful" and not result.errors:
            result.errors.append(f"ansible-playbook ended {runner.status} (exit {runner.rc}): "
                                 f"{saltresult.last_line(_runner_output(runner)) or 'no output'}")
    result.timings["total"] = time.monotonic() - started
    progress(f"==> deploy {'done' if result.ok else 'FAILED'} in {result.timings['total']:.0f} s")
    return result


def _runner_output(runner: Any) -> str:
    """What ansible-playbook printed ("" when ansible-runner kept nothing: it raises then)."""
    try:
        return runner.stdout.read() if runner.stdout else ""
    except Exception:  # ansible_runner.exceptions.AnsibleRunnerException("stdout missing")
        return ""


def runner_env(config: Path) -> dict[str, str]:
    """The environment of ansible-playbook under ansible-runner."""
    return {
        "ANSIBLE_CONFIG": str(config),
        # ansible-runner turns host key checking off unless told otherwise, and ansible then puts
        # StrictHostKeyChecking=no before ark's own options, where ssh takes the first value.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # ansible-playbook of the Python that runs ark (a virtualenv need not be on PATH).
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _ansible_cfg(work: Path, forks: int) -> str:
    """ansible's settings for ark, in place of any ansible.cfg of the admin's."""
    return "\n".join([
        "[defaults]",
        "host_key_checking = True",
        f"forks = {max(1, min(forks, 20))}",
        "retry_files_enabled = False",
        "interpreter_python = /usr/bin/python3",
        f"local_tmp = {work / 'ansible-tmp'}",
        "[ssh_connection]",
        "pipelining = True",
        # One connection per host for the whole run, closed by ark when the run ends.
        "ssh_args = -o ControlMaster=auto -o ControlPersist=120s",
        f"control_path_dir = {work / 'cp'}",
        "",
    ])


def _close_ssh_masters(control_dir: Path) -> None:
    if not control_dir.is_dir():
        return
    for socket in control_dir.iterdir():
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "ark-deploy"],
                           capture_output=True, timeout=10)


# --- command line ----------------------------------------------------------------------------


HELP = "install Salt and the site on every host over SSH, highstate twice in role order"
DESCRIPTION = (
    "Over SSH (ansible), for every host of the inventory: install Salt from the wheels in the site's files "
    "repository (pillar ark:files_repo) into /opt/salt, copy the Salt tree and the host's pillar (written by ark "
    "init) to /srv/ark, then run highstate on the control-plane host, the registry, the workers and the CE, in "
    "that order, and a second time, which must change nothing. With a site.salt_master in the inventory, the "
    "trees go to that host alone, which runs a salt-master serving every host's salt-minion (keys accepted as "
    "read over SSH) and runs highstate through its orchestrate, orch.site. Host keys: the inventory's "
    "ssh_host_key, or recorded on first contact in KNOWN_HOSTS and enforced from then on."
)


def add_deploy(subcommands: argparse._SubParsersAction) -> None:
    """The `ark deploy` subcommand, for ark.cli's SUBCOMMANDS."""
    parser = subcommands.add_parser("deploy", help=HELP, description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`ark deploy INVENTORY [--pillar DIR] [--salt-dir DIR] [--ssh-key KEY] [--known-hosts FILE]`."""
    checkout = Path(__file__).resolve().parents[1]
    parser.add_argument("inventory", type=Path, metavar="INVENTORY", help="the site inventory (YAML)")
    parser.add_argument("--pillar", type=Path, metavar="DIR",
                        help="the pillar ark init wrote (default: pillar/ beside the inventory)")
    parser.add_argument("--salt-dir", type=Path, metavar="DIR", default=checkout / "salt",
                        help="the ARK Salt tree (default: salt/ of the checkout ark runs from, %(default)s)")
    parser.add_argument("--ssh-key", type=Path, metavar="KEY",
                        help="the private key to log in with (default: ssh's own, e.g. ~/.ssh/id_ed25519 or an agent)")
    parser.add_argument("--known-hosts", type=Path, metavar="FILE",
                        help="where host keys the inventory does not give are recorded on first contact "
                             "(default: known_hosts beside the pillar directory)")


def run(args: argparse.Namespace) -> DeployResult:
    """`ark deploy`: every error line but the last on stderr, the last raised (ark's one line)."""
    from .inventory import load_inventory

    inventory = load_inventory(args.inventory, args.salt_dir)
    pillar = args.pillar or args.inventory.parent / "pillar"
    if not (pillar / "top.sls").is_file():
        raise ArkError(f"no pillar at {pillar} (no top.sls): run ark init {args.inventory} first")
    result = deploy(inventory, pillar, args.salt_dir, ssh_key=args.ssh_key, known_hosts=args.known_hosts,
                    progress=lambda line: print(line, flush=True))
    for line in result.errors[:-1]:
        print(f"ark: {line}", file=sys.stderr, flush=True)
    if result.errors:
        raise DeployError(result.errors[-1])
    return result
