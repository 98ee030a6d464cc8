"""The Vagrant test site's steps on the admin's machine, run by vagrant/Vagrantfile's triggers.

`vagrant up` makes the machines; what installs ARK on them is `ark init` and `ark deploy`, the
same two commands an admin runs against real hosts, against an inventory made from the site file
(vagrant/sites/SITE.yaml, itself an inventory) and the bundle's pillar.yaml:

  prepare    before `vagrant up`, for the docker provider (podman): the network the site's
             addresses are on, and the machine image
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
import ipaddress
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ArkError
from .images import SUITE, debian_mirror
from .inventory import merge

VAGRANT_DIR = Path(__file__).resolve().parents[1] / "vagrant"
CACHE = Path("/var/cache/ark/vagrant")
# What the machine image holds beyond minbase: systemd as PID 1, sshd and sudo for Vagrant's
# user, and what `ark deploy` needs of a host (python3-venv).
IMAGE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "procps", "sudo", "openssh-server",
                  "python3", "python3-venv", "ca-certificates")
# Bump when IMAGE_PACKAGES or _prepare_root change, so a stale cached root is not reused.
IMAGE_VERSION = "1"
VAGRANT_USER = "vagrant"
SERVE_TIMEOUT = 20.0  # seconds for the bundle's HTTP server to listen


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

    @property
    def gateway(self) -> str:
        """This machine's address on the site's network: where the bundle is served."""
        return str(next(self.subnet.hosts()))

    @property
    def files_repo(self) -> str:
        return f"http://{self.gateway}:{self.files_port}"


def load_settings(directory: Path = VAGRANT_DIR, environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    path = directory / "settings.yaml"
    raw = yaml.safe_load(path.read_text()) or {}
    site = env.get("ARK_SITE") or raw.get("site")
    site_file = directory / "sites" / f"{site}.yaml"
    if not site_file.is_file():
        known = ", ".join(sorted(p.stem for p in (directory / "sites").glob("*.yaml")))
        raise VagrantError(f"site {site!r} (ARK_SITE or site: in {path}): no {site_file}; the sites are {known}")
    try:
        subnet = ipaddress.IPv4Network(raw["network"]["subnet"])
    except (KeyError, TypeError, ValueError) as e:
        raise VagrantError(f"{path}: network.subnet must be an IPv4 range such as 10.213.60.0/24 ({e})") from None
    bundle = Path(env.get("ARK_BUNDLE") or raw["bundle"])
    return Settings(site=site, site_file=site_file, bundle=bundle if bundle.is_absolute() else directory / bundle,
                    network=raw["network"]["name"], subnet=subnet, files_port=int(raw["files_port"]),
                    image=raw["docker"]["image"])


def site_inventory(site: dict[str, Any], bundle_pillar: dict[str, Any], files_repo: str, site_dir: Path,
                   subnet: ipaddress.IPv4Network) -> dict[str, Any]:
    """The inventory `ark init` and `ark deploy` get: the site file with the bundle's pillar keys
    (pointed at `files_repo`) under its settings, its pillar file's path made absolute, and every
    host reached as Vagrant's user unless the site file says otherwise."""
    hosts = site.get("hosts") or {}
    for name, host in hosts.items():
        address = ipaddress.IPv4Address(host["address"])
        if address not in subnet or address == next(subnet.hosts()):
            raise VagrantError(f"{site_dir}: hosts.{name}.address {address} must be in network.subnet {subnet}, "
                               "and not its first address (this machine's)")
    made_for_bundle = dict(bundle_pillar["ark"])
    made_for_bundle["files_repo"] = files_repo
    made_for_bundle["apt"] = merge(made_for_bundle.get("apt", {}),
                                   {"repository": {"url": f"{files_repo}/debian"}, "proxy": ""})
    given = dict(site.get("site") or {})
    if "pillar" in given:
        given["pillar"] = str((site_dir / given["pillar"]).resolve())
    given["settings"] = merge(made_for_bundle, given.get("settings") or {})
    return {**site, "site": given,
            "hosts": {name: {"ssh_user": VAGRANT_USER, **host} for name, host in hosts.items()}}


# --- prepare -------------------------------------------------------------------------------


def ensure_network(settings: Settings) -> None:
    """The docker network the machines' addresses are on, this machine its gateway."""
    if subprocess.run(["docker", "network", "inspect", settings.network], capture_output=True).returncode == 0:
        return
    say(f"creating network {settings.network} ({settings.subnet}, this machine {settings.gateway})")
    _run(["docker", "network", "create", "--subnet", str(settings.subnet), "--gateway", settings.gateway,
          settings.network])


def ensure_image(settings: Settings, insecure_key: Path) -> None:
    """The machine image of the docker provider: Debian 12 with systemd, sshd and Vagrant's user
    (sudo without a password, Vagrant's insecure key, which Vagrant replaces at first boot),
    imported from a debootstrap root cached in CACHE."""
    if subprocess.run(["docker", "image", "inspect", settings.image], capture_output=True).returncode == 0:
        return
    archive = root_archive(insecure_key)
    say(f"importing {archive} as {settings.image}")
    with archive.open("rb") as tar:
        _run(["docker", "import", "--change", 'CMD ["/sbin/init"]', "-", settings.image], stdin=tar)


def root_archive(insecure_key: Path) -> Path:
    archive = CACHE / f"debian12-v{IMAGE_VERSION}.tar"
    if archive.exists():
        return archive
    CACHE.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    say(f"building the machine image's root: debootstrap {SUITE} from {mirror} (about two minutes, once)")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(IMAGE_PACKAGES)}", SUITE, str(root), mirror])
        _prepare_root(root, insecure_key.read_text())
        building = Path(tmp) / archive.name
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(building), "."])
        building.rename(archive)
    return archive


def _prepare_root(root: Path, insecure_key: str) -> None:
    # Each machine makes its own machine-id and SSH host keys at first boot, as a real one would.
    (root / "etc/machine-id").write_text("")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = root / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True)
    (dropin / "ark-host-keys.conf").write_text(
        "[Service]\n# Host keys before sshd's own config test, which fails without them.\n"
        "ExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n")
    _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", VAGRANT_USER])
    sudoers = root / "etc/sudoers.d" / VAGRANT_USER
    sudoers.write_text(f"{VAGRANT_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    ssh_dir = root / "home" / VAGRANT_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(insecure_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    _run(["chroot", str(root), "chown", "-R", f"{VAGRANT_USER}:{VAGRANT_USER}", f"/home/{VAGRANT_USER}/.ssh"])
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


# --- provision -----------------------------------------------------------------------------


def provision(settings: Settings, state: Path) -> None:
    if not (settings.bundle / "pillar.yaml").is_file():
        say(f"no bundle in {settings.bundle}: building it with ark bundle (minutes the first time)")
        _ark("bundle", "--out", str(settings.bundle))
    site = yaml.safe_load(settings.site_file.read_text())
    bundle_pillar = yaml.safe_load((settings.bundle / "pillar.yaml").read_text())
    inventory = state / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(
        site_inventory(site, bundle_pillar, settings.files_repo, settings.site_file.parent, settings.subnet),
        sort_keys=False))
    say(f"site {settings.site}: inventory {inventory}, bundle {settings.bundle} served at {settings.files_repo}")
    with serving(settings.bundle, settings.gateway, settings.files_port, state / "files.log"):
        _ark("init", str(inventory))
        _ark("deploy", str(inventory), "--ssh-key", str(state / "id_ed25519"))
    say(f"site {settings.site} is up; the admin's files are in {state}: inventory.yaml, pillar/ (site CA in "
        "pillar/ca/), known_hosts, id_ed25519")


@contextlib.contextmanager
def serving(directory: Path, address: str, port: int, log: Path) -> Iterator[None]:
    """`directory` over HTTP on address:port while the block runs."""
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", address, "--directory",
                                   str(directory), str(port)], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise VagrantError(f"the bundle's HTTP server does not listen on {address}:{port} (see {log}): "
                                   "is the network up, or the port taken (files_port in vagrant/settings.yaml)?")
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


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
    prepare = steps.add_parser("prepare", help="for docker: the network and the machine image")
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
            if args.provider == "docker":
                ensure_network(settings)
                ensure_image(settings, args.insecure_key)
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
