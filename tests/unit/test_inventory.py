"""`ark init`: the inventory's checks, the pillar it writes, the site CA it keeps.

Fast and pure but for openssl (the site CA) and one test that runs Salt's own render on the
written pillar for every host, which needs Salt (tools/setup-host installs it).
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ark import cli
from ark.errors import ArkError, InventoryError
from ark.inventory import load_inventory
from ark.pillar import pillar_tree, write_pillar
from ark.pki import CaPem, CertKey, make_ca, read_ca
from ark.render import FALLBACK_SALT_CALL, RenderError, check_render

REPO = Path(__file__).resolve().parents[2]
SALT_DIR = REPO / "salt"
EXAMPLE = REPO / "ark" / "examples" / "inventory.yaml"
HOSTS = ["ark-cp", "ark-registry", "ark-ce", "ark-wn1", "ark-wn2"]
# Stand-in sha256s of the right shape: the site gives its own (ark/examples/inventory.yaml).
# An ed25519 public key blob (of the key bytes 0..31).
ED25519_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
CHECKSUMS = {"1.20.2": {name: str(i) * 64 for i, name in enumerate(
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"), start=1)}}
WHEELS = {"salt": {"salt-3008.4-py3-none-any.whl": "a" * 64},
          "bridge": {"arc_bridge-0.1.0-py3-none-any.whl": "b" * 64}}


@pytest.fixture
def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture
def no_salt(monkeypatch):
    """`ark init` as on a machine without Salt: ark's own checks only."""
    monkeypatch.setattr(cli, "find_salt_call", lambda: None)


def write_inventory(directory: Path, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(directory: Path, data: dict[str, Any]):
    return load_inventory(write_inventory(directory, data), SALT_DIR)


def read_tree(out: Path) -> dict[str, Any]:
    return {str(p.relative_to(out)): yaml.safe_load(p.read_text()) for p in sorted(out.rglob("*.sls"))}


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def ca_files(directory: Path, cert_from: str = "site", key_from: str = "site") -> dict[str, str]:
    """site.ca entries, relative to the inventory in `directory`, of a CA made there (or a
    certificate of one CA with the key of another)."""
    for name in {cert_from, key_from}:
        make_ca(directory / name, "ark-site-ca")
    return {"cert": f"{cert_from}/ca.crt", "key": f"{key_from}/ca.key"}


# ---- a good inventory ----------------------------------------------------------------------------

def test_example_inventory_gives_the_split_site(tmp_path, example):
    inventory = load(tmp_path, example)
    ca = CaPem("CERT\n", "KEY\n")
    tree = pillar_tree(inventory, ca)
    assert list(tree) == ["top.sls", "site.sls"] + [f"hosts/{h}.sls" for h in HOSTS]
    assert tree["top.sls"] == {"base": {"*": ["site"], **{h: [f"hosts.{h}"] for h in HOSTS}}}
    assert tree["hosts/ark-cp.sls"] == {"ark": {"roles": ["control-plane"], "node_ip": "10.0.0.11",
                                                "kubernetes": {"node_name": "ark-cp"}}}
    assert tree["hosts/ark-wn2.sls"] == {"ark": {"roles": ["worker"], "node_ip": "10.0.0.22",
                                                 "kubernetes": {"node_name": "ark-wn2", "pod_cidr": "10.214.2.0/24"}}}
    site = tree["site.sls"]["ark"]
    assert site["hosts"] == {"ark-ce.example.org": "10.0.0.13", "ark-cp": "10.0.0.11", "ark-registry": "10.0.0.12",
                             "ark-ce": "10.0.0.13", "ark-wn1": "10.0.0.21", "ark-wn2": "10.0.0.22"}
    assert site["kubernetes"]["apiserver"] == {"address": "10.0.0.11"}
    assert site["registry"]["address"] == "10.0.0.12"
    assert site["bridge"]["session_volume"]["glusterfs"] == {"server": "10.0.0.13"}
    assert site["pki"] == {"ca": {"cert": "CERT\n", "key": "KEY\n"}}
    assert site["vos"] == example["site"]["settings"]["vos"]
    assert not {"roles", "node_ip"} & set(site) and "node_name" not in site["kubernetes"]


def test_a_site_with_a_salt_master_gets_the_orchestrate_order_in_its_pillar(tmp_path, example):
    example["site"]["salt_master"] = "ark-cp"
    inventory = load(tmp_path, example)
    assert inventory.salt_master == "ark-cp"
    tree = pillar_tree(inventory, CaPem("CERT\n", "KEY\n"))
    assert tree["top.sls"]["base"]["*"] == ["site", "orchestrate"]
    assert tree["orchestrate.sls"] == {"ark_orchestrate": {"master": "ark-cp", "groups": [
        {"role": "control-plane", "hosts": ["ark-cp"]}, {"role": "registry", "hosts": ["ark-registry"]},
        {"role": "worker", "hosts": ["ark-wn1", "ark-wn2"]}, {"role": "ce", "hosts": ["ark-ce"]}]}}


def test_with_a_salt_master_the_ca_key_is_in_the_masters_pillar_alone(tmp_path, example):
    example["site"]["salt_master"] = "ark-cp"
    tree = pillar_tree(load(tmp_path, example), CaPem("CERT\n", "CA-PRIVATE-KEY\n"))
    assert tree["site.sls"]["ark"]["pki"] == {"ca": {"cert": "CERT\n"}, "ca_server": "ark-cp"}
    assert tree["hosts/ark-cp.sls"]["ark"]["pki"] == {"ca": {"key": "CA-PRIVATE-KEY\n"}, "signed_hosts": {
        "ark-registry": {"roles": ["registry"], "node_name": "ark-registry", "node_ip": "10.0.0.12"},
        "ark-ce": {"roles": ["ce"], "node_name": "ark-ce", "node_ip": "10.0.0.13"},
        "ark-wn1": {"roles": ["worker"], "node_name": "ark-wn1", "node_ip": "10.0.0.21"},
        "ark-wn2": {"roles": ["worker"], "node_name": "ark-wn2", "node_ip": "10.0.0.22"}}}
    assert not [name for name, document in tree.items() if "CA-PRIVATE-KEY" in str(document) and name != "hosts/ark-cp.sls"]


def test_a_salt_master_that_is_not_a_host_is_refused(tmp_path, example):
    example["site"]["salt_master"] = "ark-salt"
    with pytest.raises(InventoryError, match=r"^inventory site.salt_master: not a host of the inventory \(ark-cp, "):
        load(tmp_path, example)


def test_one_worker_gets_the_site_pod_range(tmp_path, example):
    del example["hosts"]["ark-wn2"]
    del example["hosts"]["ark-wn1"]["pod_cidr"]
    example["site"]["settings"]["kubernetes"]["pod_cidr"] = "10.216.0.0/24"
    tree = pillar_tree(load(tmp_path, example), CaPem("C", "K"))
    assert tree["hosts/ark-wn1.sls"]["ark"]["kubernetes"]["pod_cidr"] == "10.216.0.0/24"


def test_settings_override_the_pillar_file_key_by_key(tmp_path, example):
    (tmp_path / "site.sls").write_text(yaml.safe_dump({"ark": {
        "files_repo": "http://old/ark-files",
        "kubernetes": {"version": "1.20.2", "service_cidr": "10.215.0.0/24"},
        "roles": ["control-plane"], "node_ip": "10.9.9.9", "hosts": {"mirror": "10.0.0.5"},
    }}))
    example["site"]["pillar"] = "site.sls"
    example["site"]["settings"]["kubernetes"] = {"service_cidr": "10.217.0.0/24"}
    site = pillar_tree(load(tmp_path, example), CaPem("C", "K"))["site.sls"]["ark"]
    assert site["files_repo"] == example["site"]["settings"]["files_repo"]
    assert site["kubernetes"]["version"] == "1.20.2"
    assert site["kubernetes"]["service_cidr"] == "10.217.0.0/24"
    assert site["hosts"]["mirror"] == "10.0.0.5" and site["hosts"]["ark-cp"] == "10.0.0.11"
    assert "roles" not in site and "node_ip" not in site


def test_ssh_fields(tmp_path, example):
    key = f"ssh-ed25519 {ED25519_KEY}"
    example["hosts"]["ark-cp"].update(ssh_user="admin", ssh_port=2222, ssh_host_key=f"{key} root@ark-cp")
    host = load(tmp_path, example).host_with("control-plane")
    assert (host.ssh_user, host.ssh_port, host.ssh_host_key) == ("admin", 2222, key)
    assert load(tmp_path, yaml.safe_load(EXAMPLE.read_text())).host_with("ce").ssh_port == 22


# ---- bad inventories ---------------------------------------------------------------------------

def rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def settings(d: dict[str, Any]) -> dict[str, Any]:
    return d["site"]["settings"]


def host(d: dict[str, Any], name: str) -> dict[str, Any]:
    return d["hosts"][name]


Mutation = Callable[[dict[str, Any], Path], Any]
BAD: dict[str, tuple[Mutation, str]] = {
    "unknown top key": (lambda d, p: d.update(host={}),
                        "inventory host: unknown key (known: site, hosts)"),
    "unknown site key": (lambda d, p: d["site"].update(setings={}),
                         "inventory site.setings: unknown key (known: pillar, settings, ca, salt_master)"),
    "unknown host key": (lambda d, p: host(d, "ark-wn1").update(pod_cdir="10.214.9.0/24"),
                         "inventory hosts.ark-wn1.pod_cdir: unknown key (known: address, roles, pod_cidr, "
                         "ssh_user, ssh_port, ssh_host_key)"),
    "unknown pillar key": (lambda d, p: rename(settings(d), "vos", "vo"), "inventory site.settings.vo: unknown key"),
    "unknown pillar section key": (lambda d, p: rename(settings(d)["kubernetes"], "service_cidr", "sevice_cidr"),
                                   "inventory site.settings.kubernetes.sevice_cidr: unknown key (known: version,"),
    "no hosts": (lambda d, p: d.pop("hosts"), "inventory hosts: expected a mapping of host name"),
    "host name not a DNS label": (lambda d, p: rename(d["hosts"], "ark-wn1", "ARK-wn1"),
                                  "inventory hosts.ARK-wn1: not a host name"),
    "host name with a dot": (lambda d, p: rename(d["hosts"], "ark-wn1", "ark-wn1.example.org"),
                             "inventory hosts.ark-wn1.example.org: not a host name"),
    "no address": (lambda d, p: host(d, "ark-ce").pop("address"),
                   "inventory hosts.ark-ce.address: required: the host's IPv4 address"),
    "address not IPv4": (lambda d, p: host(d, "ark-ce").update(address="10.0.0.300"),
                         "inventory hosts.ark-ce.address: '10.0.0.300' is not an IPv4 address"),
    "address a host name": (lambda d, p: host(d, "ark-ce").update(address="ark-ce.example.org"),
                            "inventory hosts.ark-ce.address: 'ark-ce.example.org' is not an IPv4 address"),
    "address loopback": (lambda d, p: host(d, "ark-ce").update(address="127.0.0.1"),
                         "inventory hosts.ark-ce.address: 127.0.0.1 is not an address the other hosts can reach"),
    "address twice": (lambda d, p: host(d, "ark-wn2").update(address="10.0.0.21"),
                      "inventory hosts.ark-wn2.address: 10.0.0.21 is already the address of hosts.ark-wn1"),
    "unknown role": (lambda d, p: host(d, "ark-wn1").update(roles=["wroker"]),
                     "inventory hosts.ark-wn1.roles: unknown role 'wroker' "
                     "(known: control-plane, worker, registry, ce)"),
    "no roles": (lambda d, p: host(d, "ark-wn1").update(roles=[]),
                 "inventory hosts.ark-wn1.roles: expected a non-empty list of roles"),
    "roles a string": (lambda d, p: host(d, "ark-wn1").update(roles="worker"),
                       "inventory hosts.ark-wn1.roles: expected a non-empty list of roles"),
    "role twice": (lambda d, p: host(d, "ark-wn1").update(roles=["worker", "worker"]),
                   "inventory hosts.ark-wn1.roles: a role is listed twice"),
    "two control planes": (lambda d, p: host(d, "ark-registry").update(roles=["registry", "control-plane"]),
                           "inventory hosts: a site has exactly one host with the role control-plane: "
                           "2 hosts have it (ark-cp, ark-registry)"),
    "no registry": (lambda d, p: host(d, "ark-registry").update(roles=["worker"], pod_cidr="10.214.3.0/24"),
                    "inventory hosts: a site has exactly one host with the role registry: no host has it"),
    "no ce": (lambda d, p: d["hosts"].pop("ark-ce"),
              "inventory hosts: a site has exactly one host with the role ce: no host has it"),
    "no worker": (lambda d, p: [d["hosts"].pop(w) for w in ("ark-wn1", "ark-wn2")],
                  "inventory hosts: a site needs at least one host with the role worker: no host has it"),
    "worker without pod range": (lambda d, p: host(d, "ark-wn2").pop("pod_cidr"),
                                 "inventory hosts.ark-wn2.pod_cidr: required on a site with more than one worker"),
    "pod range not a range": (lambda d, p: host(d, "ark-wn1").update(pod_cidr="10.214.1.0"),
                              "inventory hosts.ark-wn1.pod_cidr: '10.214.1.0' is not an IPv4 range like 10.214.1.0/24"),
    "pod range with host bits": (lambda d, p: host(d, "ark-wn1").update(pod_cidr="10.214.1.1/24"),
                                 "inventory hosts.ark-wn1.pod_cidr: 10.214.1.1/24 is not an IPv4 range: "
                                 "10.214.1.1/24 has host bits set"),
    "pod ranges overlap": (lambda d, p: host(d, "ark-wn2").update(pod_cidr="10.214.0.0/16"),
                           "inventory hosts.ark-wn2.pod_cidr: 10.214.0.0/16 overlaps hosts.ark-wn1.pod_cidr "
                           "10.214.1.0/24"),
    "pod range overlaps services": (
        lambda d, p: settings(d)["kubernetes"].update(service_cidr="10.214.2.128/25", pod_cidr="10.216.0.0/24"),
        "inventory hosts.ark-wn2.pod_cidr: 10.214.2.0/24 overlaps site.settings.kubernetes.service_cidr "
        "10.214.2.128/25"),
    "site pod range overlaps the default services": (
        lambda d, p: (settings(d)["kubernetes"].pop("service_cidr"),
                      settings(d)["kubernetes"].update(pod_cidr="10.215.0.0/16")),
        "inventory site.settings.kubernetes.pod_cidr: 10.215.0.0/16 overlaps the default service_cidr "
        "(salt/ark/defaults.yaml) 10.215.0.0/24"),
    "service range not a range": (lambda d, p: settings(d)["kubernetes"].update(service_cidr="10.215.0/24"),
                                  "inventory site.settings.kubernetes.service_cidr: '10.215.0/24' "
                                  "is not an IPv4 range"),
    "pod range on a non-worker": (lambda d, p: host(d, "ark-cp").update(pod_cidr="10.214.5.0/24"),
                                  "inventory hosts.ark-cp.pod_cidr: only a worker has a pod range"),
    "ssh user": (lambda d, p: host(d, "ark-cp").update(ssh_user="Root Admin"),
                 "inventory hosts.ark-cp.ssh_user: 'Root Admin' is not a user name"),
    "ssh port 0": (lambda d, p: host(d, "ark-cp").update(ssh_port=0),
                   "inventory hosts.ark-cp.ssh_port: expected a port number from 1 to 65535, got 0"),
    "ssh port too big": (lambda d, p: host(d, "ark-cp").update(ssh_port=65536),
                         "inventory hosts.ark-cp.ssh_port: expected a port number from 1 to 65535, got 65536"),
    "ssh port text": (lambda d, p: host(d, "ark-cp").update(ssh_port="22"),
                      "inventory hosts.ark-cp.ssh_port: expected a port number from 1 to 65535, got '22'"),
    "ssh host key type": (lambda d, p: host(d, "ark-cp").update(ssh_host_key="ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
                          "inventory hosts.ark-cp.ssh_host_key: expected a public host key like 'ssh-ed25519 AAAA...'"),
    "ssh host key not base64": (lambda d, p: host(d, "ark-cp").update(ssh_host_key="ssh-ed25519 AAAA!!"),
                                "inventory hosts.ark-cp.ssh_host_key: the key is not base64"),
    "ssh host key of another type": (
        lambda d, p: host(d, "ark-cp").update(ssh_host_key=f"ssh-rsa {ED25519_KEY}"),
        "inventory hosts.ark-cp.ssh_host_key: the key is not an ssh-rsa key"),
    "settings set an address ark init derives": (
        lambda d, p: settings(d).update(registry={"address": "10.0.0.99"}),
        "inventory site.settings.registry.address: ark init sets it from hosts (the registry host's address)"),
    "settings set a host's roles": (lambda d, p: settings(d).update(roles=["worker"]),
                                    "inventory site.settings.roles: ark init sets it from hosts (each host's roles)"),
    "settings give the CA": (lambda d, p: settings(d).update(pki={"ca": {"cert": "x", "key": "y"}}),
                             "inventory site.settings.pki: give the site CA as site.ca (PEM files)"),
    "settings move a host": (lambda d, p: settings(d).update(hosts={"ark-cp": "10.0.0.99"}),
                             "inventory site.settings.hosts.ark-cp: 10.0.0.99 is not the address "
                             "hosts.ark-cp.address gives (10.0.0.11)"),
    "settings not a mapping": (lambda d, p: d["site"].update(settings=["vos"]),
                               "inventory site.settings: expected a mapping with the keys of pillar ark"),
    "pillar file missing": (lambda d, p: d["site"].update(pillar="site.sls"),
                            "inventory site.pillar: {dir}/site.sls does not exist"),
    "pillar file without ark": (
        lambda d, p: ((p / "site.sls").write_text("vos: {}\n"), d["site"].update(pillar="site.sls")),
        "inventory site.pillar: {dir}/site.sls: expected YAML with the one top key ark"),
    "pillar file with a typo": (
        lambda d, p: ((p / "site.sls").write_text("ark: {kubernetes: {versoin: '1.31'}}\n"),
                      d["site"].update(pillar="site.sls")),
        "inventory site.pillar ark:kubernetes:versoin: unknown key (known: version,"),
    "pillar file with the CA": (
        lambda d, p: ((p / "site.sls").write_text("ark: {pki: {ca: {cert: x, key: y}}}\n"),
                      d["site"].update(pillar="site.sls")),
        "inventory site.pillar ark:pki:ca: give the site CA as site.ca (PEM files), not in the pillar file"),
    "CA file missing": (lambda d, p: d["site"].update(ca={"cert": "ca.crt", "key": "ca.key"}),
                        "inventory site.ca.cert: {dir}/ca.crt does not exist"),
    "CA without key": (lambda d, p: d["site"].update(ca={"cert": ca_files(p)["cert"]}),
                       "inventory site.ca.key: expected the path of a PEM file"),
    "CA key of another CA": (lambda d, p: d["site"].update(ca=ca_files(p, "site", "other")),
                             "inventory site.ca.key: {dir}/other/ca.key is not the private key of {dir}/site/ca.crt"),
    "CA not a certificate": (lambda d, p: d["site"].update(ca={**ca_files(p), "cert": "site/ca.key"}),
                             "inventory site.ca.cert: {dir}/site/ca.key is not a PEM certificate"),
}


@pytest.mark.parametrize("mutation,message", BAD.values(), ids=list(BAD))
def test_bad_inventory_fails_naming_its_key_and_writes_nothing(tmp_path, example, capsys, no_salt, mutation, message):
    inventory_dir = tmp_path / "site"
    inventory_dir.mkdir()
    mutation(example, inventory_dir)
    inventory = write_inventory(inventory_dir, example)
    before = sorted(p.name for p in inventory_dir.iterdir())
    with pytest.raises(InventoryError) as failure:
        load_inventory(inventory, SALT_DIR)
    expected = message.format(dir=inventory_dir)
    assert str(failure.value).startswith(expected)
    assert "\n" not in str(failure.value)

    assert cli.main(["init", str(inventory)]) == 1
    assert capsys.readouterr().err == f"ark: {failure.value}\n"
    assert sorted(p.name for p in inventory_dir.iterdir()) == before  # no pillar/, no temporary sibling


def test_a_failed_run_leaves_the_earlier_pillar_as_it_was(tmp_path, example, no_salt):
    inventory = write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory)]) == 0
    before = snapshot(tmp_path / "pillar")
    host(example, "ark-wn1")["roles"] = ["wroker"]
    write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory)]) == 1
    assert snapshot(tmp_path / "pillar") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml", "pillar"]


def test_a_repeated_key_is_refused(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(EXAMPLE.read_text() + "  ark-wn1:\n    address: 10.0.0.23\n    roles: [worker]\n")
    with pytest.raises(InventoryError, match=r"^inventory: .*inventory.yaml line \d+ column 3: not valid YAML: "
                                             r"duplicate key 'ark-wn1'$"):
        load_inventory(path, SALT_DIR)


def test_a_missing_salt_tree_is_named(tmp_path):
    with pytest.raises(ArkError, match=f"no ARK Salt tree at {tmp_path}"):
        load_inventory(EXAMPLE, tmp_path)


# ---- what ark init writes ----------------------------------------------------------------------

def test_init_writes_the_pillar_private(tmp_path, example, capsys, no_salt):
    inventory = write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory)]) == 0
    out = tmp_path / "pillar"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted(
        ["top.sls", "site.sls", "hosts", "ca", "ca/ca.crt", "ca/ca.key"] + [f"hosts/{h}.sls" for h in HOSTS])
    for path in [out, *out.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    tree = read_tree(out)
    assert tree == pillar_tree(load_inventory(inventory, SALT_DIR), read_ca_dir(out))
    printed = capsys.readouterr().out
    assert "note: no salt-call" in printed and f"pillar written to {out}" in printed


def read_ca_dir(out: Path) -> CaPem:
    return read_ca(CertKey(out / "ca" / "ca.crt", out / "ca" / "ca.key"))


def test_init_makes_the_site_ca_once_and_reuses_it(tmp_path, example, no_salt, capsys):
    inventory = write_inventory(tmp_path, example)
    out = tmp_path / "elsewhere"
    assert cli.main(["init", str(inventory), "--out", str(out)]) == 0
    first = read_ca_dir(out)
    assert "made, valid 10 years" in capsys.readouterr().out
    assert cli.main(["init", str(inventory), "--out", str(out)]) == 0
    assert read_ca_dir(out) == first
    assert "the one made before" in capsys.readouterr().out
    assert read_tree(out)["site.sls"]["ark"]["pki"]["ca"] == {"cert": first.cert, "key": first.key}


def test_init_uses_the_inventory_ca(tmp_path, example, no_salt):
    example["site"]["ca"] = ca_files(tmp_path)
    assert cli.main(["init", str(write_inventory(tmp_path, example))]) == 0
    out = tmp_path / "pillar"
    assert not (out / "ca").exists()
    assert read_tree(out)["site.sls"]["ark"]["pki"]["ca"]["cert"] == (tmp_path / "site" / "ca.crt").read_text()


def test_init_will_not_switch_from_the_ca_it_made(tmp_path, example, no_salt, capsys):
    inventory = write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory)]) == 0
    example["site"]["ca"] = ca_files(tmp_path)
    write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory)]) == 1
    assert capsys.readouterr().err.startswith(f"ark: inventory site.ca: {tmp_path}/pillar/ca holds the site CA")


def test_init_refuses_a_directory_it_did_not_write(tmp_path, example, no_salt, capsys):
    inventory = write_inventory(tmp_path, example)
    (tmp_path / "pillar").mkdir()
    (tmp_path / "pillar" / "top.sls").write_text("base: {'*': [site]}\n")
    assert cli.main(["init", str(inventory)]) == 1
    assert capsys.readouterr().err == (f"ark: {tmp_path}/pillar holds files ark init did not write (top.sls): "
                                       "choose another output directory, or empty it\n")
    assert (tmp_path / "pillar" / "top.sls").read_text() == "base: {'*': [site]}\n"


def test_a_failed_check_writes_nothing(tmp_path, example):
    def refuse(stage: Path) -> None:
        assert (stage / "site.sls").exists()
        raise ArkError("host ark-cp: pillar ark:vos: refused")

    with pytest.raises(ArkError):
        write_pillar(tmp_path / "pillar", pillar_tree(load(tmp_path, example), CaPem("C", "K")), check=refuse)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml"]


def test_help_answers(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["init", "--help"])
    assert done.value.code == 0
    assert "--salt-dir" in capsys.readouterr().out


# ---- Salt's own render -------------------------------------------------------------------------

@pytest.fixture
def salt_call() -> Path:
    if not FALLBACK_SALT_CALL.exists():
        pytest.skip(f"Salt is not installed at {FALLBACK_SALT_CALL}: run tools/setup-host")
    return FALLBACK_SALT_CALL


def test_salt_renders_every_host_of_the_written_pillar(tmp_path, example, salt_call, capsys):
    settings(example)["kubernetes"]["checksums"] = CHECKSUMS
    settings(example)["wheels"] = WHEELS
    inventory = write_inventory(tmp_path, example)
    assert cli.main(["init", str(inventory), "--salt-call", str(salt_call)]) == 0, capsys.readouterr().err
    assert "Salt renders every host's states" in capsys.readouterr().out


@pytest.mark.parametrize("mutation,message", [
    # ark/map.jinja's check: the VO's default image is not one of its images.
    (lambda d: (settings(d)["kubernetes"].update(checksums=CHECKSUMS),
                settings(d)["vos"]["alpha"].update(default_image="tools:2")),
     "host ark-cp: pillar ark:vos:alpha:default_image: tools:2 is not listed in ark:vos:alpha:images"),
    # The kubernetes formula's own check (the example leaves the checksums to the site).
    (lambda d: None,
     "host ark-cp: pillar ark:kubernetes:version: kubernetes 1.20.2 has no checksums"),
], ids=["vo-image", "checksums"])
def test_salt_refuses_what_only_it_checks_and_nothing_is_written(tmp_path, example, salt_call, mutation, message):
    """One host's render, to keep it quick; the test above renders them all through the CLI."""
    mutation(example)
    tree = pillar_tree(load(tmp_path, example), read_ca(make_ca(tmp_path / "ca", "ark-site-ca")))
    with pytest.raises(RenderError) as failure:
        write_pillar(tmp_path / "pillar", tree,
                     check=lambda stage: check_render(stage, ["ark-cp"], SALT_DIR, salt_call))
    assert str(failure.value).startswith(message) and "\n" not in str(failure.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca", "inventory.yaml"]

