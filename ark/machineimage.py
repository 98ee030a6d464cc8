"""The Vagrant test site's machine images, built from debootstrap (nothing can be downloaded):

- container: a root file system archive for the docker provider (`docker import`), Debian 12
  with systemd as init, sshd, sudo and python3-venv; no kernel, the machine's is shared.
- libvirt box: the same plus a kernel, an initramfs and ifupdown, as an ext4 disk without a boot
  loader (mke2fs -d, no loop device or mount needed) converted to qcow2, in a box directory
  beside the kernel and initramfs the VM boots directly (libvirt's kernel/initrd/cmdline).

Both have Vagrant's user `vagrant` with sudo without a password and Vagrant's insecure public key,
which Vagrant replaces with a key of the machine's own at first boot, as any Vagrant box does.
Each machine makes its own machine-id and SSH host keys at first boot. Builds happen in a
temporary directory beside the result and are renamed into place at the end, so an interrupted
build never looks finished.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ArkError
from .images import SUITE, debian_mirror

# What every machine holds beyond minbase: systemd as PID 1 (dbus, or systemctl cannot reach
# it without sudo), sshd and sudo for Vagrant's user, and what `ark deploy` needs of a host.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "procps", "sudo", "openssh-server",
            "python3", "python3-venv", "ca-certificates")
# A VM boots its own kernel, and Vagrant's Debian guest support configures networks with ifupdown.
VM_PACKAGES = ("linux-image-amd64", "initramfs-tools", "ifupdown", "isc-dhcp-client")
VAGRANT_USER = "vagrant"
DISK_GIB = 16  # the VM's root disk; qcow2 holds only what is used

Progress = Callable[[str], None]


class ImageError(ArkError):
    """A machine image could not be built: the message names the step and its output."""


def container_archive(archive: Path, insecure_key: Path, progress: Progress) -> Path:
    """`archive`, a tar of the container root, built if missing."""
    if archive.exists():
        return archive
    with _building(archive.parent) as tmp:
        root = _root(tmp / "root", PACKAGES, insecure_key, progress)
        # A container shares the machine's kernel: its systemd must not apply the image's sysctl.d
        # (pid_max, protected links) to the machine.
        (root / "etc/systemd/system/systemd-sysctl.service").symlink_to("/dev/null")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tmp / archive.name), "."])
        (tmp / archive.name).rename(archive)
    return archive


def libvirt_box(box_dir: Path, insecure_key: Path, progress: Progress) -> Path:
    """`box_dir` holding box.box (a libvirt box: box.img, metadata.json), vmlinuz and initrd.img,
    built if missing."""
    if (box_dir / "box.box").exists():
        return box_dir
    with _building(box_dir.parent) as tmp:
        root = _root(tmp / "root", PACKAGES + VM_PACKAGES, insecure_key, progress)
        (root / "etc/fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
        # The Vagrantfile boots with net.ifnames=0: eth0 is libvirt's management network, which
        # Vagrant reaches the VM on; Vagrant configures the site's (eth1) itself.
        (root / "etc/network/interfaces").write_text(
            "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n")
        building = tmp / box_dir.name
        building.mkdir()
        for name, pattern in (("vmlinuz", "vmlinuz-*"), ("initrd.img", "initrd.img-*")):
            found = sorted((root / "boot").glob(pattern))
            if len(found) != 1:
                raise ImageError(f"expected one {pattern} in the box's /boot, found {len(found)}")
            (building / name).write_bytes(found[0].read_bytes())
            (building / name).chmod(0o644)  # libvirt's qemu user reads them
        progress(f"    ext4 disk of {DISK_GIB} GiB from the root, as qcow2")
        raw = tmp / "disk.raw"
        _run(["truncate", "-s", f"{DISK_GIB}G", str(raw)])
        _run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "ark-root", str(raw)])
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(tmp / "box.img")])
        (tmp / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2",
                                                       "virtual_size": DISK_GIB}))
        with tarfile.open(building / "box.box", "w") as box:
            for name in ("box.img", "metadata.json"):
                box.add(tmp / name, arcname=name)
        building.rename(box_dir)
    return box_dir


@contextlib.contextmanager
def _building(parent: Path) -> Iterator[Path]:
    """A scratch directory beside the result, so the result is renamed into place whole."""
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".building-") as tmp:
        yield Path(tmp)


def debootstrap(root: Path, packages: tuple[str, ...], progress: Progress) -> Path:
    """Debian minbase with `packages` into `root`, from the machine's own mirror, made to be
    copied: each copy makes its own machine-id and SSH host keys at boot, and takes its host name
    from whoever boots it (not this machine's, which debootstrap copied)."""
    mirror = debian_mirror()
    progress(f"    debootstrap {SUITE} with {len(packages)} packages from the machine's mirror (a minute or two, once)")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), mirror])
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    return root


def _root(root: Path, packages: tuple[str, ...], insecure_key: Path, progress: Progress) -> Path:
    debootstrap(root, packages, progress)
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
    (ssh_dir / "authorized_keys").write_text(insecure_key.read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    _run(["chroot", str(root), "chown", "-R", f"{VAGRANT_USER}:{VAGRANT_USER}", f"/home/{VAGRANT_USER}/.ssh"])
    return root


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"{' '.join(argv[:3])} ... failed (exit {result.returncode}): {result.stderr.strip()[-400:]}")
