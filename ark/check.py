"""`ark check`: prove a live site, host by host and role by role, over SSH as its admin would.

For every host of the inventory (testinfra's ssh backend, the SSH settings `ark deploy` uses):
- each role's services enabled and running (SERVICES);
- exactly the roles' TCP ports listen, on the expected addresses, plus sshd; nothing on UDP
  (LISTENERS, HOST_LISTENERS);
- keys and secrets root:root 0600 (SECRET_FILES), the registry's accounts root:www-data 0640
  (GROUP_FILES), etcd's keys etcd:etcd 0600 (SERVICE_FILES); the cluster-admin credential on no
  host but the control plane (CONTROL_PLANE_ONLY);
- the same CA certificate (CA_CERT) as every other host, and as the pillar's site CA if it gives one;
- what a local account without privileges (nobody) must not reach on the host: etcd (control
  plane), which holds every Secret, and the registry's backend (registry), which takes any push
  (LOCAL_PROBES).
Then for the site:
- every worker Ready (kubectl with the admin kubeconfig on the control-plane host);
- the registry, over HTTPS verified with the CA fetched from the registry host: anonymous pulls
  refused, the pull account may read and not write, each VO's push account may write under
  vo-<VO>/ only;
- a Job as arkd makes it (arkd's kubeconfig on the CE host, the first VO's namespace, image and
  uid) runs to Complete (its log read on the control plane), and is deleted.

The registry is asked from the admin's machine, which must reach its port (as the VO managers
who push do); an upload a check starts is cancelled at once.

Accounts, VOs, ports and addresses come from the pillar `ark init` wrote (read per host as Salt
would, over salt/ark/defaults.yaml), so the admin is asked nothing.

SSH host keys are verified, never skipped: a host with `ssh_host_key` in the inventory must show
it, any other host the key `ark deploy` recorded in its known_hosts (default: known_hosts beside
the pillar directory). `ark check` records nothing: a host without a known key is reported, not
trusted.

Each check gives findings (host, role, check, ok or not, one line, and on failure what to look
at next); the report lists them per host and role, and `ark check` exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArkError

# --- what each role has, as data -----------------------------------------------------------

# The role of what every host has, whatever its roles (sshd, the CA, the SSH login itself).
HOST = "host"
ROLE_ORDER = (HOST, "control-plane", "worker", "registry", "ce")

SERVICES = {
    "control-plane": ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "worker": ("containerd", "kubelet"),
    "registry": ("docker-registry", "nginx"),
    "ce": ("arkd", "arc-arex", "arc-arex-ws"),
}
CA_KEY = "/etc/ark/pki/ca.key"
# Root's alone (0600). Masterless, every host signs its own certificates, so every host has the CA
# key; with a Salt master only the CA server (pillar ark:pki:ca_server) has it (ca_key_server).
SECRET_FILES = {
    HOST: (CA_KEY,),
    "control-plane": ("/etc/ark/pki/sa.key", "/etc/ark/pki/apiserver.key", "/etc/ark/pki/apiserver-kubelet-client.key",
                      "/etc/ark/pki/controller-manager.key", "/etc/ark/pki/scheduler.key", "/etc/ark/pki/admin.key",
                      "/etc/ark/admin.kubeconfig", "/etc/ark/pki/apiserver-etcd-client.key", "/etc/ark/pki/etcd/ca.key",
                      "/etc/ark/kubernetes/vo-objects.yaml"),
    "worker": ("/etc/ark/pki/kubelet.key", "/etc/ark/pki/kubelet-serving.key", "/etc/containerd/config.toml"),
    "registry": ("/etc/ark/pki/registry.key",),
    "ce": ("/etc/ark/pki/arkd.key", "/etc/ark/pki/arex.key", "/etc/ark/arex/hostkey.pem", "/etc/ark/arkd.kubeconfig",
           "/etc/ark/registry-pull.json"),
}
# The cluster-admin credential and what Salt applies with it: on the control-plane host only (the
# CE keeps arkd's own kubeconfig), so a host without that role must not have them.
CONTROL_PLANE_ONLY = ("/etc/ark/admin.kubeconfig", "/etc/ark/pki/admin.key", "/etc/ark/kubernetes/vo-objects.yaml")
# Secrets a service's group reads: path -> group, root-owned, 0640. nginx's workers (www-data)
# check the registry accounts.
GROUP_FILES = {
    "registry": {"/etc/ark/registry/htpasswd": "www-data"},
}
# Keys of a service that reads them as its own account: path -> account, which owns them, 0600.
SERVICE_FILES = {
    "control-plane": {"/etc/ark/pki/etcd/server.key": "etcd", "/etc/ark/pki/etcd/peer.key": "etcd"},
}
# Every TCP listener, by process (ss truncates names to 15 characters). The address:port is
# formatted with the host's facts (listen_facts): {ip} the host's address, the ports and listen
# addresses of its pillar; "*" matches anything (containerd's CRI streaming server takes a random
# loopback port; A-REX listening on 0.0.0.0 shows as one socket per address family). Nothing
# listens on UDP.
LISTENERS = {
    "control-plane": {("etcd", "127.0.0.1:2379"), ("etcd", "127.0.0.1:2380"),
                      ("kube-apiserver", "{ip}:{apiserver_port}"),
                      ("kube-controller", "127.0.0.1:10257"), ("kube-scheduler", "127.0.0.1:10259")},
    "worker": {("kubelet", "{ip}:10250"), ("kubelet", "127.0.0.1:10248"), ("containerd", "127.0.0.1:*")},
    "registry": {("nginx", "{registry_address}:{registry_port}")},  # the registry itself: a Unix socket
    "ce": {("arched", "{arex_listen}:{arex_port}")},  # A-REX's REST interface, on pillar ark:arex:listen only
}
# kube-scheduler before 1.23 also serves healthz and metrics in plain HTTP, which its
# configuration file binds to loopback (kubernetes/control_plane/configured.sls).
SCHEDULER_PLAIN_HTTP = ("kube-scheduler", "127.0.0.1:10251")
SCHEDULER_PLAIN_HTTP_UNTIL = (1, 23)
# A CE serving the session volume (pillar ark:bridge:session_volume:type glusterfs): glusterd, and
# the brick's server on a port glusterd picks.
SESSION_SERVER_LISTENERS = {("glusterd", "*:24007"), ("glusterfsd", "*:*")}
# Every host: sshd, which the site admin deploys and checks through.
HOST_LISTENERS = {("sshd", "0.0.0.0:{ssh_port}"), ("sshd", "[::]:{ssh_port}")}
# The Salt master's host (inventory site.salt_master): its publish and request ports on the host's
# address, by any process: salt-master titles its processes with their command line, which ss cuts
# to the first 15 characters of the virtualenv's path.
SALT_MASTER_LISTENERS = {("*", "{ip}:4505"), ("*", "{ip}:4506")}
CA_CERT = "/etc/ark/pki/ca.crt"
# Per role, what an unprivileged local account must not reach, and a probe run as nobody with the
# host's python3 that prints "closed: <why>" or "open: <what answered>".
_ETCD_PROBE = '''
import ssl, urllib.request
def answers(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as reply:
            return "etcdserver" in reply.read(300).decode("utf-8", "replace")
    except Exception:
        return False
anyone = ssl.create_default_context()
anyone.check_hostname, anyone.verify_mode = False, ssl.CERT_NONE
opened = [url for url, ctx in (("http://127.0.0.1:2379/version", None), ("https://127.0.0.1:2379/version", anyone))
          if answers(url, ctx)]
print("open: " + " ".join(opened) if opened else "closed: no answer without etcd's client certificate")
'''
_REGISTRY_PROBE = '''
import socket
try:
    socket.socket(socket.AF_UNIX).connect("/run/ark-registry/registry.sock")
    print("open: /run/ark-registry/registry.sock")
except OSError as e:
    print("closed: /run/ark-registry/registry.sock: " + e.strerror)
'''
LOCAL_PROBES = {"control-plane": ("etcd", _ETCD_PROBE), "registry": ("the registry backend", _REGISTRY_PROBE)}

NODE_READY_WAIT = 60.0  # seconds a worker may take to turn Ready (just after a deploy)
JOB_TIMEOUT = 180.0  # seconds for the check's Job to run to Complete, image pull included
# The manifest types a registry may hold an image as (Accept of the presence check).
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json")

Listener = tuple[str, str]  # (process, local address:port)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Finding:
    host: str
    role: str  # one of ROLE_ORDER
    check: str  # "ssh", "services", "ports", "secrets", "cluster-admin", "local-access", "ca", "node", "accounts", "job"
    ok: bool
    detail: str  # one line: what was found
    hint: str = ""  # on failure: what to look at next


class CheckFailed(ArkError):
    """Some check failed; the report above says which and why."""


# --- the site as the checks see it -----------------------------------------------------------


@dataclass(frozen=True)
class SiteHost:
    name: str
    address: str
    roles: tuple[str, ...]
    ssh_user: str
    ssh_port: int
    pillar: dict[str, Any]  # pillar `ark` as Salt gives this host, over salt/ark/defaults.yaml
    salt_master: bool = False  # the host runs the site's salt-master

    @property
    def node_name(self) -> str:
        return (self.pillar.get("kubernetes") or {}).get("node_name") or self.name


@dataclass(frozen=True)
class Site:
    hosts: tuple[SiteHost, ...]

    def with_role(self, role: str) -> SiteHost:
        return next(h for h in self.hosts if role in h.roles)


@dataclass(frozen=True)
class Vo:
    name: str
    namespace: str
    uid: int  # of the VO's first local account
    repository: str  # the default image's repository, vo-<name>/<image name>
    tag: str
    push_user: dict[str, str] | None  # {name, password}, or None: the VO has no push account


def load_site(hosts: Iterable[Any], pillar_dir: Path, salt_dir: Path) -> Site:
    """The inventory's hosts (ark.inventory.Host: name, address, roles, ssh_user, ssh_port) with
    each one's pillar `ark` from `pillar_dir` (top.sls and the files it names, as ark init writes
    them), over the defaults of the Salt tree `salt_dir`."""
    from .deploy import host_pillar, pillar_lookup
    from .inventory import load_defaults, merge

    if not (pillar_dir / "top.sls").is_file():
        raise ArkError(f"no pillar at {pillar_dir} (no top.sls): give the pillar ark init wrote (--pillar)")
    defaults = load_defaults(salt_dir)
    site = []
    for host in hosts:
        pillar = host_pillar(pillar_dir, host.name)
        ark = pillar_lookup(pillar, "ark")
        if not isinstance(ark, dict):
            raise ArkError(f"pillar {pillar_dir} gives host {host.name} no ark: run ark init again")
        site.append(SiteHost(host.name, host.address, tuple(host.roles), getattr(host, "ssh_user", "root"),
                             getattr(host, "ssh_port", 22), merge(defaults, ark),
                             pillar_lookup(pillar, "ark_orchestrate:master") == host.name))
    return Site(tuple(site))


def registry_url(site: Site) -> str:
    """address:port of the registry, as the CE's pillar names it to arkd and the workers."""
    host = site.with_role("registry")
    registry = host.pillar["registry"]
    return f"{registry.get('address') or host.address}:{registry['port']}"


def vos(pillar: dict[str, Any]) -> list[Vo]:
    """The VOs of a host's pillar, in pillar order, as map.jinja fills them in."""
    from .inventory import merge

    result = []
    push_users = (pillar.get("registry") or {}).get("push_users") or {}
    for name, spec in (pillar.get("vos") or {}).items():
        vo = merge(pillar.get("vo_defaults") or {}, spec or {})
        users = vo.get("users") or {}
        image = str(vo.get("default_image") or "")
        repository, _, tag = image.partition(":")
        result.append(Vo(name=name, namespace=vo.get("namespace") or f"ark-{name}",
                         uid=int(next(iter(users.values()))) if users else 0,
                         repository=f"vo-{name}/{repository}", tag=tag or "latest",
                         push_user=push_users.get(name)))
    return result


# --- listeners: pure -------------------------------------------------------------------------


def parse_listeners(ss_output: str) -> set[Listener]:
    """(process, local address:port) of each socket in `ss -l{t,u}npH` output. A socket ss shows
    no process for is "?"; of several processes sharing one (nginx's workers), the first."""
    found = set()
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = fields[3]
        users = fields[-1] if fields[-1].startswith("users:") else ""
        process = users.split('"')[1] if users.count('"') >= 2 else "?"
        found.add((process, local))
    return found


def listen_facts(host: SiteHost) -> dict[str, Any]:
    """What LISTENERS' addresses are formatted with, from the host's pillar."""
    ark = host.pillar
    registry, arex = ark.get("registry") or {}, ark.get("arex") or {}
    listen = str(arex.get("listen") or "0.0.0.0")
    return {
        "ip": ark.get("node_ip") or host.address,
        "ssh_port": host.ssh_port,
        "apiserver_port": ((ark.get("kubernetes") or {}).get("apiserver") or {}).get("port", 6443),
        "registry_address": registry.get("address") or host.address,
        "registry_port": registry.get("port", 5000),
        "arex_listen": "*" if listen == "0.0.0.0" else listen,
        "arex_port": arex.get("port", 8443),
    }


def expected_listeners(host: SiteHost) -> dict[str, set[Listener]]:
    """Per role (and HOST for sshd), the TCP listeners that role brings, as patterns."""
    facts = listen_facts(host)
    host_listeners = HOST_LISTENERS | (SALT_MASTER_LISTENERS if host.salt_master else set())
    expected = {HOST: {(process, local.format(**facts)) for process, local in host_listeners}}
    for role in host.roles:
        expected[role] = {(process, local.format(**facts)) for process, local in LISTENERS.get(role, ())}
    version = str(((host.pillar.get("kubernetes") or {}).get("version")))
    if "control-plane" in expected and tuple(map(int, version.split(".")[:2])) < SCHEDULER_PLAIN_HTTP_UNTIL:
        expected["control-plane"].add(SCHEDULER_PLAIN_HTTP)
    sessions = ((host.pillar.get("bridge") or {}).get("session_volume") or {}).get("type")
    if "ce" in expected and sessions == "glusterfs":
        expected["ce"] |= SESSION_SERVER_LISTENERS
    return expected


def _pattern(local: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", local)) + r"\Z")


def matches(listener: Listener, expected: Listener) -> bool:
    return expected[0] in ("*", listener[0]) and bool(_pattern(expected[1]).match(listener[1]))


def compare_listeners(host: SiteHost, tcp: set[Listener], udp: set[Listener]) -> list[Finding]:
    """One finding per role: its listeners all there; and one for the host: sshd there, nothing
    listening that no role explains, nothing on UDP."""
    expected = expected_listeners(host)
    findings = []
    for role in (r for r in ROLE_ORDER if r in expected):
        missing = sorted(e for e in expected[role] if not any(matches(found, e) for found in tcp))
        shown = ", ".join(f"{p} {local}" for p, local in sorted(expected[role]))
        if role == HOST:
            unexpected = sorted(found for found in tcp
                                if not any(matches(found, e) for wanted in expected.values() for e in wanted))
            problems = []
            if missing:
                problems.append("not listening: " + ", ".join(f"{p} {local}" for p, local in missing))
            if unexpected:
                problems.append("listening, but no role of the host's: "
                                + ", ".join(f"{p} {local}" for p, local in unexpected))
            if udp:
                problems.append("on UDP: " + ", ".join(f"{p} {local}" for p, local in sorted(udp)))
            if problems:
                findings.append(Finding(host.name, role, "ports", False, "; ".join(problems),
                                        f"ss -ltnup on {host.name}: stop what the site does not need, "
                                        "or fix the service's listen address"))
            else:
                findings.append(Finding(host.name, role, "ports", True,
                                        f"{shown}; no other TCP listener, nothing on UDP"))
        elif missing:
            findings.append(Finding(host.name, role, "ports", False,
                                    "not listening: " + ", ".join(f"{p} {local}" for p, local in missing),
                                    f"ss -ltnp and the journal of the service on {host.name} "
                                    f"(journalctl -u {_unit(missing[0][0])})"))
        else:
            findings.append(Finding(host.name, role, "ports", True, f"{shown} listening"))
    return findings


def _unit(process: str) -> str:
    """The unit behind a listening process (ss truncates names to 15 characters)."""
    units = {"kube-controller": "kube-controller-manager", "arched": "arc-arex-ws", "sshd": "ssh"}
    return units.get(process, process)


# --- files: pure -----------------------------------------------------------------------------


def parse_stat(output: str) -> dict[str, tuple[str, str, int]]:
    """`stat -c '%U %G %a %n' FILES` -> {path: (user, group, mode)} (paths without spaces)."""
    result = {}
    for line in output.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4:
            result[fields[3]] = (fields[0], fields[1], int(fields[2], 8))
    return result


def compare_files(host: SiteHost, stats: dict[str, tuple[str, str, int]]) -> list[Finding]:
    findings = []
    ca_server = ca_key_server(host)
    for role in (r for r in ROLE_ORDER if r == HOST or r in host.roles):
        wanted = {path: ("root", "root", 0o600) for path in SECRET_FILES.get(role, ())}
        wanted.update({path: ("root", group, 0o640) for path, group in GROUP_FILES.get(role, {}).items()})
        wanted.update({path: (user, user, 0o600) for path, user in SERVICE_FILES.get(role, {}).items()})
        if ca_server:
            wanted.pop(CA_KEY, None)
        if not wanted:
            continue
        problems = []
        for path, (user, group, mode) in wanted.items():
            if path not in stats:
                problems.append(f"{path} missing")
            elif stats[path] != (user, group, mode):
                have = stats[path]
                problems.append(f"{path} is {have[0]}:{have[1]} {have[2]:04o}, not {user}:{group} {mode:04o}")
        if problems:
            findings.append(Finding(host.name, role, "secrets", False, "; ".join(problems),
                                    f"ls -l on {host.name}; a highstate (ark deploy) sets owner and mode again"))
        else:
            modes = ", ".join(sorted({f"{u}:{g} {m:04o}" for u, g, m in wanted.values()}))
            what = next(iter(wanted)) if len(wanted) == 1 else f"{len(wanted)} key and secret files"
            findings.append(Finding(host.name, role, "secrets", True, f"{what} {modes}"))
    if ca_server:
        findings.append(Finding(host.name, HOST, "ca-key", CA_KEY not in stats,
                                f"{CA_KEY} on a host that {ca_server} signs for" if CA_KEY in stats else
                                f"no CA key (the CA server {ca_server}'s alone)",
                                f"run highstate on {host.name}: it removes it" if CA_KEY in stats else ""))
    if "control-plane" not in host.roles:
        stray = [path for path in CONTROL_PLANE_ONLY if path in stats]
        findings.append(Finding(host.name, HOST, "cluster-admin", not stray,
                                f"{', '.join(stray)} on a host that is not the control plane" if stray else
                                "no cluster-admin credential (the control plane's alone)",
                                f"run highstate on {host.name}: it removes them" if stray else ""))
    return findings


def ca_key_server(host: SiteHost) -> str | None:
    """The CA server that signs for this host, which then must not keep the CA's key; None where
    the host keeps it: every host masterless, the CA server itself with a master."""
    server = (host.pillar.get("pki") or {}).get("ca_server")
    return server if server and server != host.name else None


def compare_cas(cas: Mapping[str, str | None], pillar_ca: str | None = None) -> list[Finding]:
    """Every host's CA_CERT (None: unreadable) the same, and the pillar's site CA if it has one."""
    reference = _normal(pillar_ca) if pillar_ca and pillar_ca.strip() else None
    if reference is None:
        counts: dict[str, int] = {}
        for pem in cas.values():
            if pem:
                counts[_normal(pem)] = counts.get(_normal(pem), 0) + 1
        reference = max(counts, key=lambda pem: counts[pem]) if counts else None
    origin = "the pillar's site CA" if pillar_ca and pillar_ca.strip() else "most hosts'"
    findings = []
    for name, pem in cas.items():
        if not pem:
            findings.append(Finding(name, HOST, "ca", False, f"{CA_CERT} missing or unreadable",
                                    f"ls -l {CA_CERT} on {name}; a highstate (ark deploy) puts it there"))
        elif _normal(pem) != reference:
            findings.append(Finding(name, HOST, "ca", False,
                                    f"{CA_CERT} sha256 {fingerprint(pem)} is not {origin} "
                                    f"({fingerprint(reference or '')}): this host does not trust the others' certificates",
                                    "the pillar's pki:ca (ark init keeps one site CA); ark deploy writes it"))
        else:
            findings.append(Finding(name, HOST, "ca", True,
                                    f"{CA_CERT} sha256 {fingerprint(pem)}, the same on all {len(cas)} hosts"
                                    if len(cas) > 1 else f"{CA_CERT} sha256 {fingerprint(pem)}"))
    return findings


def fingerprint(pem: str) -> str:
    return hashlib.sha256(_normal(pem).encode()).hexdigest()[:16]


def _normal(pem: str) -> str:
    return "".join(pem.split())


# --- the report: pure ------------------------------------------------------------------------


def report(findings: Sequence[Finding], host_order: Sequence[str] = ()) -> str:
    """Findings per host (in `host_order`, then by name) and role, one line each:
    `HOST ROLE: CHECK DETAIL ok`, or `HOST ROLE: CHECK FAILED: DETAIL` and a `next:` line."""
    order = {name: i for i, name in enumerate(host_order)}

    def key(item: tuple[int, Finding]) -> tuple[Any, ...]:
        index, f = item
        role = ROLE_ORDER.index(f.role) if f.role in ROLE_ORDER else len(ROLE_ORDER)
        return (order.get(f.host, len(order)), f.host, role, index)

    lines = []
    for _, f in sorted(enumerate(findings), key=key):
        if f.ok:
            lines.append(f"{f.host} {f.role}: {f.check} {f.detail} ok")
        else:
            lines.append(f"{f.host} {f.role}: {f.check} FAILED: {f.detail}")
            if f.hint:
                lines.append(f"    next: {f.hint}")
    return "\n".join(lines)


def summary(findings: Sequence[Finding]) -> str:
    failed = [f for f in findings if not f.ok]
    hosts = len({f.host for f in findings})
    if not failed:
        return f"all {len(findings)} checks on {hosts} host{'s' if hosts != 1 else ''} ok"
    return f"{len(failed)} of {len(findings)} checks FAILED: " + ", ".join(
        dict.fromkeys(f"{f.host} {f.role} {f.check}" for f in failed))


# --- checks on one host (testinfra Host: over SSH, or any backend) ---------------------------


def check_services(infra: Any, host: SiteHost) -> list[Finding]:
    findings = []
    for role in (r for r in ROLE_ORDER if r in host.roles and r in SERVICES):
        problems, hint = [], ""
        for service in SERVICES[role]:
            unit = infra.service(service)
            try:
                enabled, running = unit.is_enabled, unit.is_running
            except RuntimeError:
                enabled = running = False
            if enabled and running:
                continue
            state = infra.run("systemctl is-active %s", service).stdout.strip() or "unknown"
            last = infra.run("journalctl --no-pager -q -o cat -n 1 -u %s", service).stdout.strip()
            what = [] if enabled else ["not enabled"]
            what += [] if running else [f"not running ({state})"]
            problems.append(f"{service} {' and '.join(what)}" + (f", last log: {last}" if last and not running else ""))
            hint = hint or f"journalctl -u {service} on {host.name}"
        names = " ".join(SERVICES[role])
        if problems:
            findings.append(Finding(host.name, role, "services", False, "; ".join(problems), hint))
        else:
            findings.append(Finding(host.name, role, "services", True, f"{names} enabled and running"))
    return findings


def check_ports(infra: Any, host: SiteHost) -> list[Finding]:
    tcp = parse_listeners(infra.check_output("ss -ltnpH"))
    udp = parse_listeners(infra.check_output("ss -lunpH"))
    return compare_listeners(host, tcp, udp)


def check_files(infra: Any, host: SiteHost) -> list[Finding]:
    paths = sorted({p for role in (HOST, *host.roles) for p in SECRET_FILES.get(role, ())}
                   | {p for role in host.roles for p in GROUP_FILES.get(role, {})}
                   | {p for role in host.roles for p in SERVICE_FILES.get(role, {})}
                   | set(CONTROL_PLANE_ONLY))
    result = infra.run("stat -c '%%U %%G %%a %%n' " + " ".join(["%s"] * len(paths)), *paths)
    return compare_files(host, parse_stat(result.stdout))


def check_local_access(infra: Any, host: SiteHost) -> list[Finding]:
    findings = []
    for role in (r for r in ROLE_ORDER if r in host.roles and r in LOCAL_PROBES):
        what, probe = LOCAL_PROBES[role]
        result = infra.run("setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c %s", probe)
        answer = result.stdout.strip() or f"probe failed: {_last(result.stderr)}"
        if answer.startswith("closed: "):
            findings.append(Finding(host.name, role, "local-access", True,
                                    f"{what} refuses a local account without privileges ({answer[8:]})"))
        else:
            findings.append(Finding(host.name, role, "local-access", False,
                                    f"{what} is open to every local account ({answer})",
                                    f"run highstate on {host.name}; a local account must never reach {what}"))
    return findings


def read_ca(infra: Any) -> str | None:
    result = infra.run("cat %s", CA_CERT)
    return result.stdout if result.rc == 0 and "BEGIN CERTIFICATE" in result.stdout else None


# --- the registry, from the admin's machine --------------------------------------------------


class RegistryUnreachable(Exception):
    pass


def registry_status(base: str, ca_pem: str, path: str, account: Mapping[str, str] | None = None,
                    method: str = "GET", accept: Sequence[str] = ()) -> tuple[int, dict[str, str]]:
    """Status and headers of a request to https://`base``path`, TLS verified with `ca_pem`,
    with HTTP Basic authentication as `account` ({name, password}) if given."""
    context = ssl.create_default_context(cadata=ca_pem)
    request = urllib.request.Request(f"https://{base}{path}", method=method)
    if account:
        credentials = f"{account['name']}:{account['password']}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    if accept:
        request.add_header("Accept", ", ".join(accept))
    try:
        with urllib.request.urlopen(request, context=context, timeout=15) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers or {})
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise RegistryUnreachable(f"https://{base}: {reason}") from None


class _Registry:
    """The site registry as its accounts see it from the admin's machine, for the checks below."""

    def __init__(self, site: Site, ca_pem: str | None):
        self.host = site.with_role("registry")
        self.settings = self.host.pillar["registry"]
        self.base = registry_url(site)
        self.ca_pem = ca_pem
        self.vos = vos(self.host.pillar)
        self.pull = self.settings.get("pull_user") or {}
        probe = self.vos[0] if self.vos else None
        # A repository of the site's: the first VO's default image, or the pod sandbox image.
        self.repository, self.tag = (probe.repository, probe.tag) if probe else ("ark/pause", "3.2")
        self.nginx = f"journalctl -u nginx on {self.host.name}, /etc/nginx/sites-enabled/ on {self.host.name}"

    def finding(self, ok: bool, detail: str, hint: str = "") -> Finding:
        return Finding(self.host.name, "registry", "accounts", ok, detail, "" if ok else hint or self.nginx)

    def status(self, path: str, account: Mapping[str, str] | None = None, method: str = "GET") -> int:
        return registry_status(self.base, self.ca_pem or "", path, account, method)[0]

    def upload(self, repository: str, account: Mapping[str, str]) -> int:
        """POST of a blob upload (a write); an upload that starts is cancelled, so that nothing
        of it is left but the registry's empty bookkeeping."""
        status, headers = registry_status(self.base, self.ca_pem or "", f"/v2/{repository}/blobs/uploads/", account,
                                          method="POST")
        location = re.sub(r"^https?://[^/]+", "", headers.get("Location") or headers.get("location") or "")
        if status == 202 and location.startswith("/v2/"):
            with contextlib.suppress(RegistryUnreachable):
                registry_status(self.base, self.ca_pem or "", location, account, method="DELETE")
        return status

    def run(self, checks: Callable[[], list[Finding]]) -> list[Finding]:
        if not self.ca_pem:
            return [self.finding(False, f"no site CA on {self.host.name} ({CA_CERT}) to verify https://{self.base} "
                                        "with", f"ls -l {CA_CERT} on {self.host.name}")]
        try:
            return checks()
        except RegistryUnreachable as e:
            return [self.finding(False, f"cannot reach the registry: {e}",
                                 f"systemctl status nginx on {self.host.name}; is port {self.settings['port']} of "
                                 f"{self.base.rsplit(':', 1)[0]} open to this machine?")]


def check_registry_reads(site: Site, ca_pem: str | None) -> list[Finding]:
    """Anonymous pulls refused; the pull account may read, with its password only."""
    r = _Registry(site, ca_pem)

    def checks() -> list[Finding]:
        manifest = f"/v2/{r.repository}/manifests/{r.tag}"
        anonymous = (r.status("/v2/"), r.status(manifest))
        findings = [r.finding(anonymous == (401, 401), f"anonymous pull refused (GET /v2/ and {manifest}: "
                                                        f"{anonymous[0]}, {anonymous[1]}; expected 401)")]
        if not r.pull.get("name"):
            return findings + [r.finding(False, "the pillar gives no registry:pull_user",
                                         "the inventory's registry settings")]
        read = r.status("/v2/", r.pull)
        wrong = r.status("/v2/", {"name": r.pull["name"], "password": r.pull["password"] + "-x"})
        ok = read == 200 and wrong == 401
        return findings + [r.finding(ok, f"pull account {r.pull['name']} may read (GET /v2/: {read}, expected 200; "
                                         f"with a wrong password {wrong}, expected 401)",
                                     f"/etc/ark/registry/htpasswd on {r.host.name}; {r.nginx}")]

    return r.run(checks)


def check_registry_writes(site: Site, ca_pem: str | None) -> list[Finding]:
    """The pull account may not write; each VO's push account may write under vo-<VO>/ only."""
    r = _Registry(site, ca_pem)

    def checks() -> list[Finding]:
        findings = []
        if r.pull.get("name"):
            status = r.upload(r.repository, r.pull)
            findings.append(r.finding(status == 403, f"pull account {r.pull['name']} may not write (POST upload to "
                                                     f"{r.repository}: {status}, expected 403)"))
        for vo in (vo for vo in r.vos if vo.push_user):
            account = vo.push_user or {}
            own = r.upload(vo.repository, account)
            others = {repo: r.upload(repo, account) for repo in (f"vo-{vo.name}x/base", "ark/pause")}
            ok = own == 202 and all(status == 403 for status in others.values())
            findings.append(r.finding(ok, f"VO {vo.name}'s push account {account['name']} may write under "
                                          f"vo-{vo.name}/ (POST upload to {vo.repository}: {own}, expected 202) and "
                                          "nowhere else (" + ", ".join(f"{repo}: {status}" for repo, status in
                                                                       others.items()) + ", expected 403)"))
        return findings

    return r.run(checks)


def check_registry(site: Site, ca_pem: str | None) -> list[Finding]:
    reads = check_registry_reads(site, ca_pem)
    if any(f.detail.startswith(("cannot reach", "no site CA")) for f in reads):
        return reads
    return reads + check_registry_writes(site, ca_pem)


def image_present(site: Site, ca_pem: str, repository: str, tag: str) -> bool | None:
    """Whether the registry has repository:tag (the pull account asks); None: cannot tell."""
    pull = site.with_role("registry").pillar["registry"].get("pull_user") or {}
    try:
        status, _ = registry_status(registry_url(site), ca_pem, f"/v2/{repository}/manifests/{tag}",
                                    pull if pull.get("name") else None, method="HEAD", accept=MANIFEST_TYPES)
    except RegistryUnreachable:
        return None
    return True if status == 200 else False if status == 404 else None


# --- Kubernetes, through kubectl on the site's hosts -----------------------------------------


def kubectl(infra: Any, kubeconfig: str, *args: str, input: str | None = None) -> Any:
    """kubectl ARGS on a host, with its kubeconfig; `input` is given as stdin."""
    command = " ".join(["kubectl", "--kubeconfig=%s", *(["%s"] * len(args))])
    if input is None:
        return infra.run(command, kubeconfig, *args)
    return infra.run("echo %s | base64 -d | " + command, base64.b64encode(input.encode()).decode(), kubeconfig, *args)


def check_workers_ready(infras: Mapping[str, Any], site: Site, wait: float = NODE_READY_WAIT) -> list[Finding]:
    control = site.with_role("control-plane")
    admin = control.pillar["kubernetes"].get("admin_kubeconfig") or "/etc/ark/admin.kubeconfig"
    findings = []
    for host in (h for h in site.hosts if "worker" in h.roles):
        deadline = time.monotonic() + wait
        while True:
            result = kubectl(infras[control.name], admin, "get", "node", host.node_name, "-o", "json")
            conditions: dict[str, dict[str, str]] = {}
            if result.rc == 0:
                conditions = {c["type"]: c for c in json.loads(result.stdout)["status"].get("conditions", [])}
            if conditions.get("Ready", {}).get("status") == "True" or time.monotonic() > deadline:
                break
            time.sleep(2)
        ready = conditions.get("Ready", {})
        if ready.get("status") == "True":
            findings.append(Finding(host.name, "worker", "node", True, f"{host.node_name} Ready"))
        else:
            why = (ready.get("message") or ready.get("reason") or "no Ready condition") if result.rc == 0 else (
                result.stderr.strip().splitlines() or ["kubectl failed"])[-1]
            findings.append(Finding(host.name, "worker", "node", False,
                                    f"{host.node_name} not Ready after {wait:.0f} s: {why}",
                                    f"journalctl -u kubelet on {host.name}; kubectl --kubeconfig={admin} describe node "
                                    f"{host.node_name} on {control.name}"))
    return findings


def job_manifest(name: str, vo: Vo, image: str) -> dict[str, Any]:
    """A Job as arkd makes one (the VO's namespace, image and uid, the same restrictions), small,
    and labelled as the check's so that arkd leaves it alone."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": vo.namespace,
                     "labels": {"app.kubernetes.io/managed-by": "ark-check"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(JOB_TIMEOUT),
            "template": {"metadata": {"labels": {"app.kubernetes.io/managed-by": "ark-check"}}, "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": vo.uid, "runAsGroup": vo.uid, "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "payload", "image": image,
                    "command": ["/bin/sh", "-c", "echo ark check: uid $(id -u)"],
                    "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                        "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": "100m", "memory": "64Mi"}},
                }],
            }},
        },
    }


def pod_problem(pods: dict[str, Any]) -> str | None:
    """Why the Job's pod cannot run, from `kubectl get pods -o json`: an image it cannot pull or a
    container that cannot be created; None while it may still run."""
    for pod in pods.get("items", []):
        for container in pod.get("status", {}).get("containerStatuses", []) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                         "CreateContainerConfigError", "CreateContainerError", "RunContainerError"):
                return f"{waiting['reason']}: {waiting.get('message', '')}".strip().rstrip(":")
    return None


def pod_state(pods: dict[str, Any]) -> str:
    """Where the Job's pod is, for a timeout's message: its phase and the reason it waits."""
    states = []
    for pod in pods.get("items", []):
        status = pod.get("status", {})
        state = status.get("phase", "?")
        for condition in status.get("conditions", []) or []:
            if condition.get("status") == "False" and condition.get("message"):
                state += f", {condition['type']}: {condition['message']}"
                break
        for container in status.get("containerStatuses", []) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                state += f", {waiting['reason']}"
        states.append(f"pod {pod.get('metadata', {}).get('name', '?')} {state}")
    return "; ".join(states) or "no pod"


def check_job(infras: Mapping[str, Any], site: Site, ca_pem: str | None, timeout: float = JOB_TIMEOUT) -> list[Finding]:
    ce = site.with_role("ce")
    infra = infras[ce.name]
    ark = ce.pillar
    arkd = (ark.get("bridge") or {}).get("kubeconfig") or "/etc/ark/arkd.kubeconfig"
    control = site.with_role("control-plane")
    admin = (control.pillar.get("kubernetes") or {}).get("admin_kubeconfig") or "/etc/ark/admin.kubeconfig"

    def finding(ok: bool, detail: str, hint: str = "") -> Finding:
        return Finding(ce.name, "ce", "job", ok, detail, hint)

    site_vos = vos(ark)
    if not site_vos:
        return [finding(False, "the pillar gives no VO to run a Job for", "the inventory's vos")]
    vo = site_vos[0]
    image = f"{registry_url(site)}/{vo.repository}:{vo.tag}"
    if ca_pem and image_present(site, ca_pem, vo.repository, vo.tag) is False:
        pusher = f" (push account {vo.push_user['name']})" if vo.push_user else ""
        return [finding(False, f"image {image}, VO {vo.name}'s default, is not in the registry yet: "
                               f"VO {vo.name}'s manager must push it first{pusher}",
                        f"skopeo copy --dest-cert-dir=DIR_WITH_SITE_CA ... docker://{image}")]
    name = f"ark-check-{secrets.token_hex(3)}"
    where = f"Job {name} in {vo.namespace} (image {image}, uid {vo.uid})"
    events = f"kubectl --kubeconfig={admin} -n {vo.namespace} get events on {control.name}"
    created = kubectl(infra, arkd, "create", "-f", "-", input=json.dumps(job_manifest(name, vo, image)))
    if created.rc != 0:
        return [finding(False, f"arkd's credentials ({arkd}) cannot create {where}: "
                               f"{_last(created.stderr)}", f"journalctl -u arkd on {ce.name}; {events}")]
    started = time.monotonic()
    try:
        state, why, pods = "", "", {}
        while time.monotonic() - started < timeout:
            got = kubectl(infra, arkd, "-n", vo.namespace, "get", "job", name, "-o", "json")
            if got.rc == 0:
                conditions = {c["type"]: c for c in json.loads(got.stdout).get("status", {}).get("conditions", [])
                              if c.get("status") == "True"}
                if "Complete" in conditions or "Failed" in conditions:
                    state = "Complete" if "Complete" in conditions else "Failed"
                    why = conditions.get("Failed", {}).get("message", "")
                    break
            listed = kubectl(infra, arkd, "-n", vo.namespace, "get", "pods", "-l", f"job-name={name}", "-o", "json")
            pods = json.loads(listed.stdout) if listed.rc == 0 else {}
            problem = pod_problem(pods)
            if problem:
                state, why = "stuck", problem
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        if state == "Complete":
            logs = kubectl(infras[control.name], admin, "-n", vo.namespace, "logs", f"job/{name}")
            said = logs.stdout.strip()
            if said == f"ark check: uid {vo.uid}":
                return [finding(True, f"{where} ran to Complete in {elapsed:.0f} s")]
            return [finding(False, f"{where} completed but said {said or _last(logs.stderr)!r}, "
                                   f"expected 'ark check: uid {vo.uid}'", events)]
        if state == "stuck" and "pull" in why.lower():
            return [finding(False, f"{where} cannot pull its image: {why}",
                            f"is {image} in the registry (VO {vo.name}'s manager pushes it)? "
                            "journalctl -u containerd on the worker; " + events)]
        if state:
            return [finding(False, f"{where} {state}: {why}", events)]
        return [finding(False, f"{where} not Complete after {timeout:.0f} s: {pod_state(pods)}",
                        f"{events}; journalctl -u kubelet on the workers")]
    finally:
        kubectl(infra, arkd, "-n", vo.namespace, "delete", "job", name, "--wait=false")


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# --- SSH: testinfra over the SSH settings ark deploy uses ------------------------------------


def ssh_config(hosts: Sequence[Any], *, known_hosts: Path, pinned: Path, ssh_key: Path | None,
               control_dir: Path) -> str:
    """An ssh_config with one Host block per inventory host (by its name): address, user, port,
    and ark deploy's host key options (ark.deploy.ssh_options), strict: ark check records no key."""
    from .deploy import ssh_options

    blocks = []
    for host in hosts:
        options = ssh_options(host, known_hosts=known_hosts, pinned=pinned, recorded=True, ssh_key=ssh_key)
        lines = [f"Host {host.name}", f"  HostName {host.address}", f"  User {host.ssh_user}",
                 f"  Port {host.ssh_port}"]
        for option in options[1::2]:
            key, _, value = option.partition("=")
            lines.append(f"  {key} {_quoted(value)}")
        if ssh_key:
            lines.append(f"  IdentityFile {_quoted(str(ssh_key))}")
        lines.append(f"  ControlPath {_quoted(str(control_dir / '%C'))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _quoted(value: str) -> str:
    return f'"{value}"' if " " in value else value


def host_key_known(host: Any, known_hosts: Path) -> bool:
    from .deploy import is_recorded

    return bool(host.ssh_host_key) or is_recorded(known_hosts, host.name)


@contextlib.contextmanager
def ssh_hosts(hosts: Sequence[Any], *, known_hosts: Path, ssh_key: Path | None = None) -> Iterator[dict[str, Any]]:
    """testinfra Hosts (ssh backend) for the inventory's hosts, by name; a host whose user is not
    root runs the commands with sudo. The SSH connections end with the block."""
    try:
        import testinfra  # the admin extra
    except ImportError:
        raise ArkError("ark check runs its checks with testinfra, which is not installed: "
                       "pip install 'arc-bridge[admin]'") from None

    from .deploy import pinned_known_hosts

    with tempfile.TemporaryDirectory(prefix="ark-check-") as tmp:
        work = Path(tmp)
        pinned = work / "pinned_known_hosts"
        pinned.write_text(pinned_known_hosts(hosts))
        (work / "cm").mkdir(mode=0o700)
        config = work / "ssh_config"
        config.write_text(ssh_config(hosts, known_hosts=known_hosts.resolve(), pinned=pinned, ssh_key=ssh_key,
                                     control_dir=work / "cm"))
        infras = {h.name: testinfra.get_host(f"ssh://{h.name}", ssh_config=str(config), timeout=15,
                                             sudo=h.ssh_user != "root") for h in hosts}
        try:
            yield infras
        finally:
            for host in hosts:  # the connection masters testinfra started (ControlPersist)
                subprocess.run(["ssh", "-F", str(config), "-O", "exit", host.name], capture_output=True, timeout=10)


def check_ssh(infra: Any, host: Any, known_hosts: Path) -> Finding:
    """Whether ark can log in to the host, its key verified."""
    where = f"{host.ssh_user}@{host.address}:{host.ssh_port}"
    origin = "hosts." + host.name + ".ssh_host_key" if host.ssh_host_key else str(known_hosts)
    if not host_key_known(host, known_hosts):
        return Finding(host.name, HOST, "ssh", False,
                       f"no SSH host key known for {host.name}: not in the inventory, not recorded in {known_hosts}",
                       f"run ark deploy (it records the key on first contact), or put the key in "
                       f"hosts.{host.name}.ssh_host_key")
    try:
        result = infra.run("id -u")
    except RuntimeError as e:
        message = getattr(e.args[0], "stderr", "") if e.args else ""
        if any(text in message for text in ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed")):
            return Finding(host.name, HOST, "ssh", False, f"the SSH host key of {where} is not the one in {origin}: "
                           "refusing to connect", f"if {host.name} was reinstalled, update {origin}")
        return Finding(host.name, HOST, "ssh", False, f"cannot log in as {where}: {_last(message)}",
                       f"ssh -p {host.ssh_port} {where.rsplit(':', 1)[0]}")
    if result.stdout.strip() != "0":
        return Finding(host.name, HOST, "ssh", False, f"commands on {where} do not run as root: {_last(result.stderr)}",
                       f"sudo without a password for {host.ssh_user} on {host.name}")
    return Finding(host.name, HOST, "ssh", True, f"{where}, host key as in {origin}")


# --- the whole check -------------------------------------------------------------------------


def check_site(site: Site, infras: Mapping[str, Any], *, ssh: Mapping[str, Finding] | None = None,
               progress: Progress = lambda line: None) -> list[Finding]:
    """Every check, hosts first then the site; `ssh`: the login finding per host (a host that
    failed it gets no other host check, and site checks that need it fail with a pointer)."""
    findings: list[Finding] = []
    reachable = {h.name for h in site.hosts if ssh is None or ssh[h.name].ok}
    cas: dict[str, str | None] = {}
    for host in site.hosts:
        if ssh is not None:
            findings.append(ssh[host.name])
        if host.name not in reachable:
            continue
        progress(f"{host.name}: services, ports, secrets, local access, CA")
        infra = infras[host.name]
        for role, name, run in ((host.roles[0], "services", check_services), (HOST, "ports", check_ports),
                                (HOST, "secrets", check_files), (host.roles[0], "local-access", check_local_access)):
            findings += _guarded(host.name, role, name, lambda: run(infra, host))
        cas[host.name] = _guarded(host.name, HOST, "ca", lambda: read_ca(infra), findings)
    pillar_ca = ((site.hosts[0].pillar.get("pki") or {}).get("ca") or {}).get("cert") if site.hosts else None
    findings += compare_cas(cas, pillar_ca)

    def needs(role: str, check: str, about: str) -> bool:
        """Whether the host a site check runs on (that of `role`) can be logged in to; if not,
        the check fails on each host of role `about` that it is about."""
        host = site.with_role(role)
        if host.name in reachable:
            return True
        findings.extend(Finding(h.name, about, check, False, f"not checked: no SSH login to {host.name}",
                                f"the ssh finding of {host.name}") for h in site.hosts if about in h.roles)
        return False

    if needs("control-plane", "node", "worker"):
        progress("workers Ready")
        findings += _guarded(site.with_role("worker").name, "worker", "node",
                             lambda: check_workers_ready(infras, site))
    # The site CA the admin holds (the pillar's) is the trust anchor; the registry host's own copy
    # only where the pillar has none, as a host cannot vouch for itself.
    ca_pem = pillar_ca or cas.get(site.with_role("registry").name)
    if needs("registry", "accounts", "registry"):
        progress("registry accounts")
        findings += _guarded(site.with_role("registry").name, "registry", "accounts",
                             lambda: check_registry(site, ca_pem))
    if needs("ce", "job", "ce"):
        progress(f"a Job of the first VO (up to {JOB_TIMEOUT:.0f} s)")
        findings += _guarded(site.with_role("ce").name, "ce", "job", lambda: check_job(infras, site, ca_pem))
    return findings


def _guarded(host: str, role: str, check: str, run: Callable[[], Any], into: list[Finding] | None = None) -> Any:
    """run(), or, if it fails unexpectedly (a lost SSH connection, a command's odd output), a
    failed finding saying so: one check that cannot finish does not hide the others' results.
    With `into`, the finding goes there and None is returned (for a check that returns data)."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - reported as a finding, the report goes on
        first = e.args[0] if e.args else e
        # testinfra's ssh backend raises with the command's result: its stderr says what happened.
        message = _last(getattr(first, "stderr", None) or str(first))
        failed = Finding(host, role, check, False, f"could not finish: {type(e).__name__}: {message}",
                         f"ssh to {host} and run the check's commands by hand")
        if into is not None:
            into.append(failed)
            return None
        return [failed]


def run_checks(inventory_hosts: Sequence[Any], pillar_dir: Path, salt_dir: Path, *, ssh_key: Path | None = None,
               known_hosts: Path | None = None, progress: Progress = lambda line: None) -> list[Finding]:
    """Every check of the site the inventory's hosts make, over SSH."""
    from .deploy import default_known_hosts

    site = load_site(inventory_hosts, pillar_dir, salt_dir)
    known_hosts = (known_hosts or default_known_hosts(pillar_dir)).resolve()
    if ssh_key and not ssh_key.is_file():
        raise ArkError(f"SSH key {ssh_key} does not exist")
    with ssh_hosts(inventory_hosts, known_hosts=known_hosts, ssh_key=ssh_key) as infras:
        ssh = {h.name: check_ssh(infras[h.name], h, known_hosts) for h in inventory_hosts}
        return check_site(site, infras, ssh=ssh, progress=progress)


# --- command line ----------------------------------------------------------------------------


def add_check(subcommands: argparse._SubParsersAction) -> None:
    checkout = Path(__file__).resolve().parents[1]
    parser = subcommands.add_parser(
        "check", help="prove a live site, per host and role, over SSH",
        description="Check every host of the inventory over SSH, as its roles say it should be: services enabled "
                    "and running, exactly the roles' ports listening, keys and secrets private, one site CA; then "
                    "the site: workers Ready, the registry's accounts, and a Job of the first VO run to Complete "
                    "(and deleted). Accounts and VOs come from the pillar ark init wrote. Prints a line per host, "
                    "role and check; exit status 1 if any check failed.",
    )
    parser.add_argument("inventory", type=Path, metavar="INVENTORY", help="the site inventory (YAML)")
    parser.add_argument("--pillar", type=Path, metavar="DIR",
                        help="the pillar ark init wrote (default: pillar/ beside the inventory)")
    parser.add_argument("--salt-dir", type=Path, metavar="DIR", default=checkout / "salt",
                        help="the ARK Salt tree, whose defaults fill in what the pillar leaves out "
                             "(default: salt/ of the checkout ark runs from, %(default)s)")
    parser.add_argument("--ssh-key", type=Path, metavar="KEY",
                        help="the private key to log in with (default: ssh's own, e.g. ~/.ssh/id_ed25519 or an agent)")
    parser.add_argument("--known-hosts", type=Path, metavar="FILE",
                        help="the host keys ark deploy recorded (default: known_hosts beside the pillar directory); "
                             "a host with neither a key there nor hosts.NAME.ssh_host_key is not logged in to")
    parser.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> list[Finding]:
    from .inventory import load_inventory

    if shutil.which("ssh") is None:
        raise ArkError("ssh is not on PATH: ark check logs in to the hosts with OpenSSH's client")
    inventory = load_inventory(args.inventory, args.salt_dir)
    pillar = args.pillar or args.inventory.parent / "pillar"
    started = time.monotonic()
    findings = run_checks(inventory.hosts, pillar, args.salt_dir, ssh_key=args.ssh_key, known_hosts=args.known_hosts,
                          progress=lambda line: print(f"==> checking {line}", file=sys.stderr, flush=True))
    print(report(findings, [h.name for h in inventory.hosts]), flush=True)
    line = f"{summary(findings)} ({time.monotonic() - started:.0f} s)"
    if any(not f.ok for f in findings):
        raise CheckFailed(line)
    print(f"==> {line}", flush=True)
    return findings
