"""The Vagrant test site's steps on the admin's machine, run by vagrant/Vagrantfile's triggers.

`vagrant up` makes the machines; what installs ARK on them is `ark init` and `ark deploy`, the
same two commands an admin runs against real hosts, against an inventory made from the site file
(vagrant/sites/SITE.yaml, itself an inventory) and the bundle's pillar.yaml:

  prepare    before `vagrant up`: for the docker provider (podman) the network the site's
             addresses are on and the machine image, for libvirt ARK's box (ark.machineimage)
  provision  after the last machine is up (or `vagrant provision`): the bundle (`ark bundle` if
             there is none), the inventory, then `ark init` and `ark deploy` while the bundle is
             served on the network's gateway address, the site's only source of packages
  forget     after `vagrant destroy` of a machine: its recorded SSH host key (a new machine of
             the same name has another), and the docker network once no machine uses it

What the steps write lives in the Vagrant state directory (VAGRANT_DOTFILE_PATH, default
vagrant/.vagrant), under ark/: id_ed25519 (the admin key the Vagrantfile makes and has each
machine authorize for Vagrant's user), inventory.yaml, pillar/ (with the
site CA in pillar/ca/), known_hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import ipaddress
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import machineimage
from .bundle import served_at
from .errors import ArkError
from .inventory import merge

VAGRANT_DIR = Path(__file__).resolve().parents[1] / "vagrant"
# The docker image's root archive, named after the image: a new image name in settings.yaml
# (docker.image) when ark.machineimage changes is a new build.
CACHE = Path("/var/cache/ark/vagrant")


class VagrantError(ArkError):
    """A Vagrant site step cannot go on: the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    """vagrant/settings.yaml, with ARK_SITE and ARK_BUNDLE from the environment over it."""

    site: str
    site_file: Path
    bundle: Path
    network: str
    subnet: ipaddress.IPv4Network
    files_port: int
    image: str
    box_dir: Path | None  # ARK's own libvirt box, its kernel and initramfs; None: another box

    @property
    def gateway(self) -> str:
        """This machine's address on the site's network: where the bundle is served."""
        return str(next(self.subnet.hosts()))

    @property
    def files_repo(self) -> str:
        return f"http://{self.gateway}:{self.files_port}"


def load_settings(directory: Path = VAGRANT_DIR, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    path = directory / "settings.yaml"
    raw = read_yaml(path)

    def setting(key: str) -> Any:
        value: Any = raw
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise VagrantError(f"{path}: {key} is missing (the file in the repository has every key)")
        return value

    site = env.get("ARK_SITE") or setting("site")
    site_file = directory / "sites" / f"{site}.yaml"
    if not site_file.is_file():
        known = ", ".join(sorted(p.stem for p in (directory / "sites").glob("*.yaml")))
        raise VagrantError(f"site {site!r} (ARK_SITE or site: in {path}): no {site_file}; the sites are {known}")
    try:
        subnet = ipaddress.IPv4Network(setting("network.subnet"))
        files_port = int(setting("files_port"))
        if not 1 <= files_port <= 65535:
            raise ValueError(f"files_port {files_port}")
    except ValueError as e:
        raise VagrantError(f"{path}: network.subnet must be an IPv4 range such as 10.213.60.0/24, files_port a "
                           f"port number ({e})") from None
    bundle = Path(env.get("ARK_BUNDLE") or setting("bundle"))
    return Settings(site=site, site_file=site_file, bundle=bundle if bundle.is_absolute() else directory / bundle,
                    network=setting("network.name"), subnet=subnet, files_port=files_port,
                    image=setting("docker.image"),
                    box_dir=directory / setting("libvirt.box_dir") if setting("libvirt.box_dir") else None)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise VagrantError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise VagrantError(f"{path}: expected a mapping of settings")
    return data


def check_addresses(site: dict[str, Any], site_file: Path, subnet: ipaddress.IPv4Network) -> dict[str, Any]:
    """The site file's hosts, each address on the network and not this machine's; checked before
    any machine is made. What else is wrong with a host, ark init names."""
    hosts = site.get("hosts")
    if not isinstance(hosts, dict) or not hosts or not all(isinstance(host, dict) for host in hosts.values()):
        raise VagrantError(f"{site_file}: hosts must map each machine's name to its address and roles")
    for name, host in hosts.items():
        try:
            address = ipaddress.IPv4Address(host["address"])
        except (KeyError, TypeError, ValueError):
            continue
        if address not in subnet or address == next(subnet.hosts()):
            raise VagrantError(f"{site_file}: hosts.{name}.address {address} must be in network.subnet {subnet}, "
                               "and not its first address (this machine's)")
    return hosts


def site_inventory(site: dict[str, Any], bundle_pillar: dict[str, Any], files_repo: str, site_file: Path,
                   subnet: ipaddress.IPv4Network) -> dict[str, Any]:
    """The inventory `ark init` and `ark deploy` get: the site file with the bundle's pillar keys
    (pointed at `files_repo`) under its settings, its pillar file's path made absolute, and every
    host reached as Vagrant's user unless the site file says otherwise."""
    hosts = check_addresses(site, site_file, subnet)
    if not isinstance(bundle_pillar.get("ark"), dict):
        raise VagrantError("the bundle's pillar.yaml has no ark: mapping: rebuild it with ark bundle")
    given = dict(site.get("site") or {})
    if "pillar" in given:
        given["pillar"] = str((site_file.parent / given["pillar"]).resolve())
    given["settings"] = merge(served_at(bundle_pillar["ark"], files_repo), given.get("settings") or {})
    return {**site, "site": given,
            "hosts": {name: {"ssh_user": machineimage.VAGRANT_USER, **host} for name, host in hosts.items()}}


# --- prepare -------------------------------------------------------------------------------


def ensure_network(settings: Settings) -> None:
    """The docker network the machines' addresses are on, this machine its gateway."""
    found = subprocess.run(["docker", "network", "inspect", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}",
                            settings.network], capture_output=True, text=True)
    if found.returncode == 0:
        if str(settings.subnet) not in found.stdout.split():
            raise VagrantError(f"network {settings.network} exists with {found.stdout.strip() or 'another range'}, "
                               f"not network.subnet {settings.subnet}: remove it or name another in settings.yaml")
        return
    say(f"creating network {settings.network} ({settings.subnet}, this machine {settings.gateway})")
    _run(["docker", "network", "create", "--subnet", str(settings.subnet), "--gateway", settings.gateway,
          settings.network])


def ensure_image(settings: Settings, insecure_key: Path) -> None:
    """The docker provider's machine image, imported from a root archive cached in CACHE."""
    if subprocess.run(["docker", "image", "inspect", settings.image], capture_output=True).returncode == 0:
        return
    archive = CACHE / (settings.image.replace("/", "-").replace(":", "-") + ".tar")
    if not archive.exists():
        say(f"building the machine image's root {archive} (once)")
    machineimage.container_archive(archive, insecure_key, say)
    say(f"importing {archive} as {settings.image}")
    with archive.open("rb") as tar:
        _run(["docker", "import", "--change", 'CMD ["/sbin/init"]', "-", settings.image], stdin=tar)


def ensure_box(settings: Settings, insecure_key: Path) -> None:
    """The libvirt provider's box (ARK's own, when settings name its directory)."""
    if settings.box_dir and not (settings.box_dir / "box.box").exists():
        say(f"building the libvirt box {settings.box_dir} (once)")
        machineimage.libvirt_box(settings.box_dir, insecure_key, say)


# --- provision -----------------------------------------------------------------------------


def provision(settings: Settings, state: Path) -> None:
    if not (settings.bundle / "pillar.yaml").is_file():
        say(f"no bundle in {settings.bundle}: building it with ark bundle (minutes the first time)")
        _ark("bundle", "--out", str(settings.bundle))
    site = read_yaml(settings.site_file)
    bundle_pillar = read_yaml(settings.bundle / "pillar.yaml")
    inventory = state / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(
        site_inventory(site, bundle_pillar, settings.files_repo, settings.site_file, settings.subnet),
        sort_keys=False))
    say(f"site {settings.site}: inventory {inventory}, bundle {settings.bundle} served at {settings.files_repo}")
    with serving(settings.bundle, settings.gateway, settings.files_port, state / "files.log"):
        _ark("init", str(inventory))
        _ark("deploy", str(inventory), "--ssh-key", str(state / "id_ed25519"))
    say(f"site {settings.site} is up; the admin's files are in {state}: inventory.yaml, pillar/ (site CA in "
        "pillar/ca/), known_hosts, id_ed25519")


@contextlib.contextmanager
def serving(directory: Path, address: str, port: int, log: Path) -> Iterator[int]:
    """`directory` over HTTP on address:port (0: any free one) while the block runs, from this
    process, yielding the port: a port another process holds is an error at once, never that
    process answering instead."""
    with log.open("a") as out:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                out.write(f"{self.address_string()} {format % args}\n")

        try:
            server = http.server.ThreadingHTTPServer((address, port), Handler)
        except OSError as e:
            raise VagrantError(f"cannot serve the bundle on {address}:{port}: {e.strerror}: is the network up, or "
                               "the port taken (files_port in vagrant/settings.yaml)?") from None
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


# --- forget --------------------------------------------------------------------------------


def forget(settings: Settings, state: Path, machine: str, provider: str) -> None:
    known_hosts = state / "known_hosts"
    if known_hosts.exists():
        subprocess.run(["ssh-keygen", "-R", machine, "-f", str(known_hosts)], capture_output=True)
        Path(f"{known_hosts}.old").unlink(missing_ok=True)
    if provider == "docker":
        # Refused while another machine is on it; the last machine's destroy removes it.
        subprocess.run(["docker", "network", "rm", settings.network], capture_output=True)


# --- command line ----------------------------------------------------------------------------


def _ark(*args: str) -> None:
    say("ark " + " ".join(args))
    result = subprocess.run([sys.executable, "-m", "ark", *args], cwd=VAGRANT_DIR.parent)
    if result.returncode != 0:
        raise VagrantError(f"ark {args[0]} failed (exit {result.returncode}): see its output above")


def _run(argv: list[str], stdin: Any = None) -> None:
    result = subprocess.run(argv, stdin=stdin, capture_output=True, text=stdin is None)
    if result.returncode != 0:
        output = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        raise VagrantError(f"{' '.join(argv[:3])} ... failed (exit {result.returncode}): {output.strip()[-400:]}")


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m ark.vagrant",
                                     description="The steps vagrant/Vagrantfile runs on this machine; see "
                                                 "vagrant/README.md. Settings: vagrant/settings.yaml, ARK_SITE, "
                                                 "ARK_BUNDLE.")
    parser.add_argument("--state", type=Path, required=True, metavar="DIR",
                        help="where the site's admin files go (Vagrant's state directory /ark)")
    steps = parser.add_subparsers(dest="step", required=True)
    prepare = steps.add_parser("prepare", help="docker: the network and the machine image; libvirt: the box")
    prepare.add_argument("--provider", required=True)
    prepare.add_argument("--insecure-key", type=Path, required=True, metavar="FILE",
                         help="Vagrant's insecure public key (keys/vagrant.pub of Vagrant's source)")
    steps.add_parser("provision", help="ark init and ark deploy of the site, the bundle served meanwhile")
    forget_parser = steps.add_parser("forget", help="a destroyed machine's host key; the network once unused")
    forget_parser.add_argument("--provider", required=True)
    forget_parser.add_argument("machine")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.step == "prepare":
            check_addresses(read_yaml(settings.site_file), settings.site_file, settings.subnet)
            if args.provider == "docker":
                ensure_network(settings)
                ensure_image(settings, args.insecure_key)
            elif args.provider == "libvirt":
                ensure_box(settings, args.insecure_key)
        elif args.step == "provision":
            provision(settings, args.state)
        else:
            forget(settings, args.state, args.machine, args.provider)
    except (ArkError, OSError) as e:
        print(f"ark.vagrant: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
