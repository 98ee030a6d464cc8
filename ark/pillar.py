"""The site's Salt pillar, made from the inventory, laid out as pillar/top.sls describes: what all
hosts share in site.sls, and per host (selected by minion id, which is the host's name) a small
file with its roles, address, node name and, on workers, pod range.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import ArkError
from .inventory import Inventory, merge, role_groups
from .pki import CaPem

# File name (relative to the pillar root) -> its YAML document.
PillarTree = dict[str, dict[str, Any]]

HEADER = "# Written by `ark init` from the site inventory: change the inventory and run ark init again.\n"
# What ark init writes into its output directory, which it replaces whole on each run.
OWN_ENTRIES = ("top.sls", "site.sls", "orchestrate.sls", "hosts", "ca")


def pillar_tree(inventory: Inventory, ca: CaPem) -> PillarTree:
    shared = {key: value for key, value in inventory.settings.items() if key not in ("roles", "node_ip")}
    if "kubernetes" in shared:
        shared["kubernetes"] = {k: v for k, v in shared["kubernetes"].items() if k != "node_name"}
    site = merge(shared, {
        "hosts": {h.name: h.address for h in inventory.hosts},
        "kubernetes": {"apiserver": {"address": inventory.host_with("control-plane").address}},
        "registry": {"address": inventory.host_with("registry").address},
        # Where a session volume ARK serves comes from (salt/sessions): the CE.
        "bridge": {"session_volume": {"glusterfs": {"server": inventory.host_with("ce").address}}},
        # With a Salt master the CA's key goes to the master's host alone (below), which signs for
        # the others (salt/kubernetes/signing.sls).
        "pki": {"ca": {"cert": ca.cert}, "ca_server": inventory.salt_master} if inventory.salt_master
        else {"ca": {"cert": ca.cert, "key": ca.key}},
    })
    everyone = ["site"]
    tree: PillarTree = {"top.sls": {}, "site.sls": {"ark": site}}
    if inventory.salt_master:
        # salt/orch/site.sls runs highstate group by group in this order; on the master, where the
        # orchestrate runner compiles its own pillar under an id of its own, hence for '*'.
        everyone.append("orchestrate")
        tree["orchestrate.sls"] = {"ark_orchestrate": {"master": inventory.salt_master, "groups": [
            {"role": role, "hosts": names} for role, names in role_groups(inventory.hosts).items() if names]}}
    tree["top.sls"] = {"base": {"*": everyone, **{h.name: [f"hosts.{h.name}"] for h in inventory.hosts}}}
    for host in inventory.hosts:
        kubernetes = {"node_name": host.name}
        if host.pod_cidr:
            kubernetes["pod_cidr"] = host.pod_cidr
        tree[f"hosts/{host.name}.sls"] = {"ark": {"roles": list(host.roles), "node_ip": host.address,
                                                  "kubernetes": kubernetes}}
    if inventory.salt_master:
        tree[f"hosts/{inventory.salt_master}.sls"]["ark"]["pki"] = {"ca": {"key": ca.key}, "signed_hosts": {
            h.name: {"roles": list(h.roles), "node_name": h.name, "node_ip": h.address}
            for h in inventory.hosts if h.name != inventory.salt_master}}
    return tree


def write_pillar(out: Path, tree: PillarTree, keep_ca: CaPem | None = None,
                 check: Callable[[Path], None] | None = None) -> None:
    """Put the tree at `out` whole or not at all: written into a temporary sibling, checked there
    by `check` (given the sibling's path), then renamed into place. `keep_ca` is the CA ark init
    made, kept as out/ca/ca.crt and ca.key for the next run. Every file is 0600 and every directory
    0700: site.sls holds the CA key and the registry passwords."""
    _refuse_foreign(out)
    if not out.parent.is_dir():
        raise ArkError(f"{out.parent} does not exist: make it, or choose another output directory")
    files = {name: HEADER + dump(document) for name, document in tree.items()}
    if keep_ca:
        files.update({"ca/ca.crt": keep_ca.cert, "ca/ca.key": keep_ca.key})
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        for name, text in files.items():
            path = stage / name
            path.parent.mkdir(mode=0o700, exist_ok=True)
            # Created 0600, not chmod-ed afterwards: the key is never readable by others.
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(text)
        if check:
            check(stage)
        _replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


class _Dumper(yaml.SafeDumper):
    """PEM text and other multi-line strings as block scalars, readable as pillar/site.sls shows."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def _refuse_foreign(out: Path) -> None:
    """ark init replaces its output directory whole: never one holding files it did not write."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ArkError(f"{out} exists and is not a directory: choose another output directory")
    entries = sorted(p.name for p in out.iterdir())
    top = out / "top.sls"
    ours = top.is_file() and top.read_text().startswith(HEADER)
    foreign = [name for name in entries if name not in OWN_ENTRIES] if ours else entries
    if foreign:
        raise ArkError(f"{out} holds files ark init did not write ({', '.join(foreign)}): "
                       "choose another output directory, or empty it")


def _replace(stage: Path, out: Path) -> None:
    if not out.exists():
        os.rename(stage, out)
        return
    # Two renames: for a moment between them `out` is missing, never half-written.
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old)
    try:
        os.rename(stage, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old)
