"""The site inventory: one YAML file naming the site's hosts, their roles, and what they share.

Everything here is checked before anything is written, and each error names the inventory key,
so an admin can fix the file from the message alone. What the hosts share is pillar `ark`, whose
values (VOs, queues, accounts, ...) Salt's own render of salt/ark/map.jinja checks afterwards
(ark.render); here only what the inventory itself decides, and typos in key names.
ark/examples/inventory.yaml documents every key.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

from .errors import ArkError, InventoryError
from .pki import CaError, CertKey, check_ca

ROLES = ("control-plane", "worker", "registry", "ce")
# Roles a site runs exactly once: the pillar names one API server and one registry address, and
# A-REX publishes one endpoint.
SINGLE_ROLES = ("control-plane", "registry", "ce")
# The order highstate runs in, masterless or orchestrated: each role's services are there before
# the roles that use them.
HIGHSTATE_ORDER = ("control-plane", "registry", "worker", "ce")
# Kubernetes node names: the host name is also the node name and the Salt minion id.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# useradd's rule without the trailing $ of machine accounts, which cannot log in over ssh.
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
IPV4_RANGE = re.compile(r"^[0-9]{1,3}([.][0-9]{1,3}){3}/[0-9]{1,2}$")
SSH_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")

INVENTORY_KEYS = ("site", "hosts")
SITE_KEYS = ("pillar", "settings", "ca", "salt_master")
CA_KEYS = ("cert", "key")
HOST_KEYS = ("address", "roles", "pod_cidr", "ssh_user", "ssh_port", "ssh_host_key")
# Sections of pillar `ark` whose keys are the site's own names, not ARK's: not checked for typos.
OPEN_SECTIONS = ("priority_classes",)
# Pillar keys ark init sets from `hosts`: site.settings may not set them; an admin's pillar file
# may (a copy of pillar/site.sls does), and ark init replaces them.
DERIVED = {
    ("roles",): "each host's roles",
    ("node_ip",): "each host's address",
    ("kubernetes", "node_name"): "each host's name",
    ("kubernetes", "apiserver", "address"): "the control-plane host's address",
    ("registry", "address"): "the registry host's address",
    ("bridge", "session_volume", "glusterfs", "server"): "the ce host's address",
}

# Where a piece of pillar `ark` comes from, to name its keys in errors: "site.pillar" (the admin's
# pillar file) or "site.settings".
Source = str


class HasRoles(Protocol):
    name: str
    roles: tuple[str, ...]


def role_groups(hosts: Iterable[HasRoles]) -> dict[str, list[str]]:
    """Host names by the first of their roles in HIGHSTATE_ORDER: the groups highstate runs in, in order."""
    groups: dict[str, list[str]] = {role: [] for role in HIGHSTATE_ORDER}
    for host in hosts:
        first = min((HIGHSTATE_ORDER.index(role) for role in host.roles if role in HIGHSTATE_ORDER), default=None)
        if first is None:
            raise ArkError(f"host {host.name} has no role ark deploys ({', '.join(HIGHSTATE_ORDER)})")
        groups[HIGHSTATE_ORDER[first]].append(host.name)
    return groups


@dataclass(frozen=True)
class Host:
    name: str  # host name, Salt minion id and Kubernetes node name
    address: str
    roles: tuple[str, ...]
    # A worker's pod range: its own, or on a site with one worker the site's; None on other hosts.
    pod_cidr: str | None
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_host_key: str | None = None  # "TYPE BASE64"; None: recorded on first contact


@dataclass(frozen=True)
class Inventory:
    path: Path
    # Pillar `ark` as every host shares it: the admin's pillar file with site.settings merged over
    # it, key by key; what ark init derives from the hosts is added by ark.pillar.
    settings: dict[str, Any]
    hosts: tuple[Host, ...]
    ca: CertKey | None  # the admin's own site CA, checked; None: ark init keeps its own
    # The host that runs salt-master and orchestrates the others' highstates; None: masterless.
    salt_master: str | None = None

    def host_with(self, role: str) -> Host:
        """The host of a role a site runs once (SINGLE_ROLES)."""
        (host,) = (h for h in self.hosts if role in h.roles)
        return host


def load_inventory(path: Path, salt_dir: Path) -> Inventory:
    """Read and check an inventory; `salt_dir` is the Salt tree whose ark/defaults.yaml gives the
    values the site leaves out."""
    defaults = load_defaults(salt_dir)
    raw = _mapping(read_yaml(path, ""), "", INVENTORY_KEYS)
    site = raw.get("site")
    site = _mapping({} if site is None else site, "site", SITE_KEYS)
    sources = _pillar_sources(site, path.parent, defaults)
    settings: dict[str, Any] = {}
    for _, ark in sources:
        settings = merge(settings, ark)
    hosts = _hosts(raw.get("hosts"))
    _check_roles(hosts)
    for source, ark in sources:
        _check_host_entries(source, ark.get("hosts"), hosts)
    hosts = _pod_ranges(hosts, sources, defaults)
    ca = _site_ca(site.get("ca"), path.parent)
    return Inventory(path, settings, hosts, ca, _salt_master(site.get("salt_master"), hosts))


def load_defaults(salt_dir: Path) -> dict[str, Any]:
    defaults = salt_dir / "ark" / "defaults.yaml"
    if not defaults.is_file():
        raise ArkError(f"no ARK Salt tree at {salt_dir} (no ark/defaults.yaml): give the salt/ directory of the "
                       "ARK repository (ark init --salt-dir)")
    return yaml.safe_load(defaults.read_text())


def read_yaml(path: Path, key: str) -> Any:
    """A YAML file that may not repeat a key (PyYAML would keep the last one silently)."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except OSError as e:
        raise InventoryError(key, f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise InventoryError(key, f"{path}{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` deep-merged into a copy of `base`, mappings key by key, as Salt merges pillar."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _join(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)


def _mapping(value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InventoryError(key, f"expected a mapping with keys {', '.join(known)}")
    for name in value:
        if name not in known:
            raise InventoryError(_join(key, name), f"unknown key (known: {', '.join(known)})")
    return value


def _pillar_key(source: Source, path: tuple[str, ...]) -> str:
    if source == "site.pillar":
        return "site.pillar ark:" + ":".join(path)
    return ".".join((source, *path))


def _pillar_sources(site: dict[str, Any], base: Path, defaults: dict[str, Any]) -> list[tuple[Source, dict[str, Any]]]:
    """The pieces of pillar `ark` the site gives, in merge order: its pillar file, then settings."""
    sources: list[tuple[Source, dict[str, Any]]] = []
    if "pillar" in site:
        sources.append(("site.pillar", _pillar_file(site["pillar"], base)))
    if "settings" in site:
        settings = site["settings"] or {}
        if not isinstance(settings, dict):
            raise InventoryError("site.settings", "expected a mapping with the keys of pillar ark (pillar/site.sls)")
        for path, why in DERIVED.items():
            if _get(settings, path) is not None:
                raise InventoryError(_pillar_key("site.settings", path), f"ark init sets it from hosts ({why})")
        if "pki" in settings:
            raise InventoryError("site.settings.pki",
                                 "give the site CA as site.ca (PEM files), or let ark init make one")
        sources.append(("site.settings", settings))
    for source, ark in sources:
        _check_known_keys(source, ark, defaults)
    return sources


def _pillar_file(value: Any, base: Path) -> dict[str, Any]:
    if not isinstance(value, str) or not value:
        raise InventoryError("site.pillar", "expected the path of a pillar file (YAML with the top key ark)")
    path = base / value
    if not path.is_file():
        raise InventoryError("site.pillar", f"{path} does not exist")
    data = read_yaml(path, "site.pillar")
    if not isinstance(data, dict) or list(data) != ["ark"] or not isinstance(data["ark"], dict):
        raise InventoryError("site.pillar",
                             f"{path}: expected YAML with the one top key ark, a mapping (as pillar/site.sls)")
    ca = _get(data["ark"], ("pki", "ca"))
    if isinstance(ca, dict) and (ca.get("cert") or ca.get("key")):
        raise InventoryError("site.pillar ark:pki:ca",
                             "give the site CA as site.ca (PEM files), not in the pillar file")
    return data["ark"]


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _check_known_keys(source: Source, ark: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Keys of pillar `ark` and of its sections must be ARK's (salt/ark/defaults.yaml has them all):
    map.jinja ignores a key it does not read, so a misspelt one would silently not apply."""
    for name, value in ark.items():
        if name not in defaults:
            raise InventoryError(_pillar_key(source, (name,)), f"unknown key (known: {', '.join(defaults)})")
        section = defaults[name]
        if not isinstance(section, dict) or not section or name in OPEN_SECTIONS:
            continue
        if not isinstance(value, dict):
            raise InventoryError(_pillar_key(source, (name,)), f"expected a mapping with keys {', '.join(section)}")
        for sub in value:
            if sub not in section:
                raise InventoryError(_pillar_key(source, (name, sub)), f"unknown key (known: {', '.join(section)})")


def _hosts(value: Any) -> tuple[Host, ...]:
    if not isinstance(value, dict) or not value:
        raise InventoryError("hosts", "expected a mapping of host name to {address: ..., roles: [...]}")
    hosts: list[Host] = []
    owner: dict[str, str] = {}
    for name, spec in value.items():
        key = _join("hosts", name)
        if not isinstance(name, str) or not DNS_LABEL.match(name):
            raise InventoryError(key, "not a host name: lower-case letters, digits and -, at most 63 "
                                      "(the Kubernetes node name)")
        host = _host(name, _mapping(spec, key, HOST_KEYS), key)
        if host.address in owner:
            raise InventoryError(f"{key}.address",
                                 f"{host.address} is already the address of hosts.{owner[host.address]}")
        owner[host.address] = name
        hosts.append(host)
    return tuple(hosts)


def _host(name: str, spec: dict[str, Any], key: str) -> Host:
    address = spec.get("address")
    if address is None:
        raise InventoryError(f"{key}.address", "required: the host's IPv4 address")
    try:
        ip = ipaddress.IPv4Address(address) if isinstance(address, str) else None
    except ValueError:
        ip = None
    if ip is None:
        raise InventoryError(f"{key}.address", f"{address!r} is not an IPv4 address")
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        raise InventoryError(f"{key}.address", f"{address} is not an address the other hosts can reach")
    roles = spec.get("roles")
    if not isinstance(roles, list) or not roles:
        raise InventoryError(f"{key}.roles", f"expected a non-empty list of roles (known: {', '.join(ROLES)})")
    for role in roles:
        if role not in ROLES:
            raise InventoryError(f"{key}.roles", f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if len(set(roles)) != len(roles):
        raise InventoryError(f"{key}.roles", "a role is listed twice")
    pod_cidr = spec.get("pod_cidr")
    if pod_cidr is not None:
        if "worker" not in roles:
            raise InventoryError(f"{key}.pod_cidr", "only a worker has a pod range")
        _network(pod_cidr, f"{key}.pod_cidr")
    user = spec.get("ssh_user", "root")
    if not isinstance(user, str) or not USER_NAME.match(user):
        raise InventoryError(f"{key}.ssh_user", f"{user!r} is not a user name (lower-case letters, digits, _ and -)")
    port = spec.get("ssh_port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InventoryError(f"{key}.ssh_port", f"expected a port number from 1 to 65535, got {port!r}")
    host_key = spec.get("ssh_host_key")
    if host_key is not None:
        host_key = _ssh_host_key(host_key, f"{key}.ssh_host_key")
    return Host(name, address, tuple(roles), pod_cidr, user, port, host_key)


def _ssh_host_key(value: Any, key: str) -> str:
    """"TYPE BASE64" of a public host key (a trailing comment, as in a .pub file, is dropped)."""
    fields = value.split() if isinstance(value, str) else []
    expected = f"a public host key like 'ssh-ed25519 AAAA...' (types: {', '.join(SSH_KEY_TYPES)})"
    if len(fields) < 2 or fields[0] not in SSH_KEY_TYPES:
        raise InventoryError(key, f"expected {expected}")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError:
        raise InventoryError(key, f"the key is not base64: expected {expected}") from None
    # The key blob starts with its own type, length-prefixed: a truncated or mislabelled paste
    # fails here rather than at the first ssh connection.
    kind = fields[0].encode()
    if blob[:4 + len(kind)] != len(kind).to_bytes(4, "big") + kind:
        raise InventoryError(key, f"the key is not an {fields[0]} key")
    return f"{fields[0]} {fields[1]}"


def _check_roles(hosts: tuple[Host, ...]) -> None:
    for role in SINGLE_ROLES:
        names = [h.name for h in hosts if role in h.roles]
        if len(names) != 1:
            found = f"{len(names)} hosts have it ({', '.join(names)})" if names else "no host has it"
            raise InventoryError("hosts", f"a site has exactly one host with the role {role}: {found}")
    if not any("worker" in h.roles for h in hosts):
        raise InventoryError("hosts", "a site needs at least one host with the role worker: no host has it")


def _check_host_entries(source: Source, entries: Any, hosts: tuple[Host, ...]) -> None:
    """Pillar `ark:hosts` may name more hosts (for /etc/hosts); the inventory's own it may only repeat."""
    if not isinstance(entries, dict):
        return  # map.jinja refuses anything but a mapping, naming ark:hosts
    addresses = {h.name: h.address for h in hosts}
    for name, address in entries.items():
        if name in addresses and address != addresses[name]:
            raise InventoryError(_pillar_key(source, ("hosts", name)),
                                 f"{address} is not the address hosts.{name}.address gives ({addresses[name]})")


def _network(value: Any, key: str) -> ipaddress.IPv4Network:
    try:
        if isinstance(value, str) and IPV4_RANGE.match(value):
            return ipaddress.IPv4Network(value)
    except ValueError as e:
        raise InventoryError(key, f"{value} is not an IPv4 range: {e}") from None
    raise InventoryError(key, f"{value!r} is not an IPv4 range like 10.214.1.0/24")


def _site_range(name: str, sources: list[tuple[Source, dict[str, Any]]],
                defaults: dict[str, Any]) -> tuple[ipaddress.IPv4Network, str]:
    """A range of pillar ark:kubernetes and the key that set it (the last source that has it)."""
    path = ("kubernetes", name)
    for source, ark in reversed(sources):
        if _get(ark, path) is not None:
            key = _pillar_key(source, path)
            return _network(_get(ark, path), key), key
    return _network(_get(defaults, path), f"kubernetes.{name}"), f"the default {name} (salt/ark/defaults.yaml)"


def _pod_ranges(hosts: tuple[Host, ...], sources: list[tuple[Source, dict[str, Any]]],
                defaults: dict[str, Any]) -> tuple[Host, ...]:
    """Each worker's pods get addresses from a range of its own (a bridge per node, no overlay),
    apart from the services' range; the site's pod range serves a site with one worker."""
    service, service_key = _site_range("service_cidr", sources, defaults)
    site_pods, site_pods_key = _site_range("pod_cidr", sources, defaults)
    if site_pods.overlaps(service):
        raise InventoryError(site_pods_key, f"{site_pods} overlaps {service_key} {service}")
    workers = [h for h in hosts if "worker" in h.roles]
    taken: dict[ipaddress.IPv4Network, str] = {}
    for host in workers:
        key = f"hosts.{host.name}.pod_cidr"
        if host.pod_cidr is None:
            if len(workers) > 1:
                raise InventoryError(key, "required on a site with more than one worker: each worker's pods "
                                          "get addresses from a range of its own")
            continue
        pods = _network(host.pod_cidr, key)
        if pods.overlaps(service):
            raise InventoryError(key, f"{pods} overlaps {service_key} {service}")
        for other, other_key in taken.items():
            if pods.overlaps(other):
                raise InventoryError(key, f"{pods} overlaps {other_key} {other}")
        taken[pods] = key
    return tuple(replace(h, pod_cidr=h.pod_cidr or str(site_pods)) if "worker" in h.roles else h for h in hosts)


def _salt_master(value: Any, hosts: tuple[Host, ...]) -> str | None:
    if value is None:
        return None
    names = [h.name for h in hosts]
    if value not in names:
        raise InventoryError("site.salt_master", f"not a host of the inventory ({', '.join(names)})")
    return str(value)


def _site_ca(value: Any, base: Path) -> CertKey | None:
    if value is None:
        return None
    spec = _mapping(value, "site.ca", CA_KEYS)
    for part in CA_KEYS:
        if not isinstance(spec.get(part), str) or not spec[part]:
            raise InventoryError(f"site.ca.{part}", "expected the path of a PEM file")
        if not (base / spec[part]).is_file():
            raise InventoryError(f"site.ca.{part}", f"{base / spec[part]} does not exist")
    ca = CertKey(base / spec["cert"], base / spec["key"])
    try:
        check_ca(ca)
    except CaError as e:
        raise InventoryError(f"site.ca.{e.part}", str(e)) from None
    return ca
