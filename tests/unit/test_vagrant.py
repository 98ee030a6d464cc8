"""ark.vagrant's pure part: the settings of vagrant/ and the inventory the Vagrant site's
`ark init` and `ark deploy` get from a site file and the bundle's pillar keys."""

from __future__ import annotations

import ipaddress
import urllib.request
from pathlib import Path

import pytest
import yaml

from ark.inventory import load_inventory
from ark.vagrant import VAGRANT_DIR, VagrantError, load_settings, serving, site_inventory

SALT_DIR = Path(__file__).resolve().parents[2] / "salt"
SUBNET = ipaddress.IPv4Network("10.213.60.0/24")
FILES_REPO = "http://10.213.60.1:8060"
# What `ark bundle` writes to pillar.yaml when no --url was given.
BUNDLE_PILLAR = {"ark": {
    "files_repo": "<files_repo>",
    "apt": {"proxy": "", "repository": {"url": "<files_repo>/debian", "key": "KEY"}},
    "kubernetes": {"version": "1.20.2", "checksums": {"1.20.2": {"kubelet": "0" * 64}}},
    "wheels": {"salt": {"salt-3008.4-py3-none-any.whl": "1" * 64}},
}}


def one_host(address: str = "10.213.60.2", **extra) -> dict:
    return {"site": {"pillar": "../../pillar/site.sls", "settings": {"arex": {"hostname": "ark-aio"}}},
            "hosts": {"ark-aio": {"address": address, "roles": ["control-plane", "worker", "registry", "ce"],
                                  **extra}}}


def test_the_bundle_keys_point_at_the_served_bundle_under_the_sites_own_settings():
    made = site_inventory(one_host(), BUNDLE_PILLAR, FILES_REPO, VAGRANT_DIR / "sites" / "one.yaml", SUBNET)
    settings = made["site"]["settings"]
    assert settings["files_repo"] == FILES_REPO
    assert settings["apt"]["repository"] == {"url": f"{FILES_REPO}/debian", "key": "KEY"}
    assert settings["kubernetes"]["checksums"] == BUNDLE_PILLAR["ark"]["kubernetes"]["checksums"]
    assert settings["arex"] == {"hostname": "ark-aio"}
    assert made["site"]["pillar"] == str((VAGRANT_DIR.parent / "pillar" / "site.sls").resolve())


def test_hosts_are_reached_as_vagrants_user_unless_the_site_file_says_otherwise():
    assert site_inventory(one_host(), BUNDLE_PILLAR, FILES_REPO, VAGRANT_DIR / "one.yaml", SUBNET)["hosts"]["ark-aio"][
        "ssh_user"] == "vagrant"
    own = site_inventory(one_host(ssh_user="admin"), BUNDLE_PILLAR, FILES_REPO, VAGRANT_DIR / "one.yaml", SUBNET)
    assert own["hosts"]["ark-aio"]["ssh_user"] == "admin"


@pytest.mark.parametrize("address", ["10.213.61.2", "10.213.60.1"])
def test_an_address_off_the_network_or_on_this_machine_is_refused(address):
    with pytest.raises(VagrantError, match=f"hosts.ark-aio.address {address} must be in network.subnet"):
        site_inventory(one_host(address), BUNDLE_PILLAR, FILES_REPO, VAGRANT_DIR / "one.yaml", SUBNET)


@pytest.mark.parametrize("site", ["all-in-one", "split"])
def test_each_shipped_site_makes_an_inventory_ark_accepts(site, tmp_path):
    settings = load_settings(environ={"ARK_SITE": site})
    raw = yaml.safe_load(settings.site_file.read_text())
    made = site_inventory(raw, BUNDLE_PILLAR, settings.files_repo, settings.site_file, settings.subnet)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(made))
    inventory = load_inventory(path, SALT_DIR)
    assert {h.name: (h.address, h.ssh_user) for h in inventory.hosts} == {
        name: (host["address"], "vagrant") for name, host in raw["hosts"].items()}
    assert inventory.settings["arex"]["listen"] == inventory.host_with("ce").address


def test_settings_take_the_site_and_bundle_from_the_environment(tmp_path):
    settings = load_settings(environ={"ARK_SITE": "all-in-one", "ARK_BUNDLE": str(tmp_path)})
    assert (settings.site, settings.bundle) == ("all-in-one", tmp_path)
    assert settings.files_repo == f"http://{settings.gateway}:{settings.files_port}"
    assert ipaddress.IPv4Address(settings.gateway) == next(settings.subnet.hosts())
    assert settings.box_dir and settings.box_dir.is_absolute()


def test_the_bundle_is_served_from_this_process_and_a_taken_port_is_named(tmp_path):
    (tmp_path / "hello").write_text("bundle\n")
    with serving(tmp_path, "127.0.0.1", 0, tmp_path / "log") as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello") as answer:
            assert answer.read() == b"bundle\n"
        with pytest.raises(VagrantError, match=f"cannot serve the bundle on 127.0.0.1:{port}"):
            with serving(tmp_path, "127.0.0.1", port, tmp_path / "log"):
                pass


def test_an_unknown_site_is_refused_naming_the_sites():
    with pytest.raises(VagrantError, match="site 'nope' .* the sites are all-in-one, split"):
        load_settings(environ={"ARK_SITE": "nope"})


def test_a_missing_setting_is_named(tmp_path):
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "one.yaml").write_text("hosts: {}\n")
    (tmp_path / "settings.yaml").write_text("site: one\nbundle: b\nnetwork: {name: n}\n")
    with pytest.raises(VagrantError, match="settings.yaml: network.subnet is missing"):
        load_settings(tmp_path, environ={})


def test_settings_that_are_not_yaml_are_refused_naming_the_file(tmp_path):
    (tmp_path / "settings.yaml").write_text("site: [one\n")
    with pytest.raises(VagrantError, match="settings.yaml: not valid YAML"):
        load_settings(tmp_path, environ={})
