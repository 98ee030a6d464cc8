"""The Debian side of `ark bundle`: the packages the roles install, with every package they need,
as a flat apt repository signed with a key of the bundle's own.

What goes in: the Depends, Pre-Depends and Recommends closure of the role packages as apt
resolves it for a machine with nothing installed (a private, empty dpkg status), so a host with
anything from nothing to a full Debian 12 minbase finds every package it lacks. Recommends are in
because Salt's pkg states install them, as apt does by default. Where from: the machine's own apt
sources and lists (whatever mirror or proxy its apt is configured with; none is named here), into
a download cache of ark's, so a second bundle downloads only what changed.

The repository is flat (`deb URL/debian ./`): the .deb files, Packages, Packages.gz and Release
made by apt-ftparchive (apt-utils), Release signed as InRelease and Release.gpg.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ArkError

Progress = Callable[[str], None]

KEY_NAME = "ARK site bundle"
RELEASE_FIELDS = {
    "Origin": "ARK",
    "Label": "ARK site bundle",
    "Suite": "ark",
    "Codename": "ark",
    "Architectures": "amd64 all",
    "Description": "Debian packages of an ARK site, made by ark bundle",
}
INDEX_FILES = ("Packages", "Packages.gz", "Release", "InRelease", "Release.gpg")
# "Inst NAME [OLD] (VERSION ORIGINS [ARCH])" in apt-get -s output.
INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)")


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        """The name apt stores the archive under: NAME_VERSION_ARCH.deb, ':' as %3a."""
        return f"{_quote(self.name)}_{_quote(self.version)}_{_quote(self.arch)}.deb"


def _quote(text: str) -> str:
    return "".join(f"%{ord(c):02x}" if c in "_:" else c for c in text)


# --- the package closure -----------------------------------------------------------------------


def _apt_options(cache: Path) -> list[str]:
    """apt-get with the machine's sources and lists, but an empty dpkg status and ark's own
    download cache: it resolves as for an empty machine and touches nothing of the machine's."""
    state, archives = cache / "state", cache / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    if not (state / "status").exists():
        (state / "status").touch()
    return [
        "-o", f"Dir::State::status={state / 'status'}",
        "-o", f"Dir::State::extended_states={state / 'extended_states'}",
        "-o", f"Dir::Cache::archives={archives}/",
        # apt's binary caches of the lists, ark's own (they hold our empty status): a warm run
        # resolves in a second instead of parsing every list again.
        "-o", f"Dir::Cache::pkgcache={cache / 'pkgcache.bin'}",
        "-o", f"Dir::Cache::srcpkgcache={cache / 'srcpkgcache.bin'}",
        "-o", "APT::Install-Recommends=true", "-o", "APT::Install-Suggests=false",
    ]


def apt_fingerprint(packages: Sequence[str]) -> str:
    """What apt's answer for `packages` depends on: its configuration, sources and preferences
    (/etc/apt) and the lists the last `apt-get update` fetched (names, sizes and times)."""
    digest = hashlib.sha256("\0".join(packages).encode())
    for top in (Path("/etc/apt"), Path("/var/lib/apt/lists")):
        for path in sorted(top.rglob("*")):
            with contextlib.suppress(OSError):
                if path.is_file():
                    st = path.stat()
                    digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def resolve(packages: Sequence[str], cache: Path) -> list[Deb]:
    """Every package apt would install for `packages` on an empty machine."""
    argv = ["apt-get", "-s", *_apt_options(cache), "install", *packages]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, env=_apt_env())
    if result.returncode != 0:
        tail = " / ".join(result.stderr.strip().splitlines()[-4:])
        raise ArkError(f"apt cannot resolve the role packages from the machine's apt sources: {tail} "
                       "(is `apt-get update` needed?)")
    debs = [Deb(*m.groups()) for m in map(INST.match, result.stdout.splitlines()) if m]
    if not debs:
        raise ArkError("apt resolved no packages to download (apt-get -s printed no Inst lines)")
    return debs


def download(debs: Sequence[Deb], packages: Sequence[str], cache: Path, progress: Progress) -> Path:
    """Fetch what the cache lacks of `debs` (apt-get install --download-only); the cache's archives."""
    archives = cache / "archives"
    missing = [d for d in debs if not (archives / d.filename).exists()]
    if not missing:
        progress(f"    all {len(debs)} packages already downloaded ({archives})")
        return archives
    progress(f"    downloading {len(missing)} of {len(debs)} packages from the machine's apt sources "
             f"into {archives} (the long step on a cold cache)")
    argv = ["apt-get", "-q", "-y", "--download-only", *_apt_options(cache), "install", *packages]
    started = last = time.monotonic()
    got = 0
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, env=_apt_env()) as proc:
        assert proc.stdout is not None
        output = []
        for line in proc.stdout:
            output.append(line.rstrip())
            if line.startswith("Get:"):
                got += 1
                if time.monotonic() - last >= 15:
                    last = time.monotonic()
                    progress(f"    ... {got} of {len(missing)} packages, {last - started:.0f} s")
        proc.wait()
    if proc.returncode != 0:
        tail = " / ".join(line for line in output[-6:] if line)
        raise ArkError(f"apt-get --download-only failed (exit {proc.returncode}): {tail}")
    lost = [d.filename for d in debs if not (archives / d.filename).exists()]
    if lost:
        raise ArkError(f"apt-get left {len(lost)} packages undownloaded, e.g. {lost[0]}")
    progress(f"    downloaded {got} packages in {time.monotonic() - started:.0f} s")
    return archives


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


# --- the signing key ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    home: Path  # gpg's home directory, holding the secret key; never part of the bundle
    fingerprint: str
    public: str  # ASCII-armored public key

    def gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _gpg(self.home, *args)

    def sign(self, source: Path, target: Path, *, clear: bool = False, armor: bool = False) -> None:
        """A signature of `source` by this key in `target` (inline clear-signed or detached)."""
        target.unlink(missing_ok=True)
        mode = ["--clearsign"] if clear else ["--detach-sign", *(["--armor"] if armor else [])]
        self.gpg("--local-user", self.fingerprint, "--digest-algo", "SHA512", *mode, "--output", str(target),
                 str(source))


@contextmanager
def signing_key(home: Path, progress: Progress) -> Iterator[SigningKey]:
    """The bundle's signing key in gpg home `home`, made there on first use (ed25519, no
    passphrase, no expiry) and kept for every later bundle: hosts trust it once, by pillar.
    gpg's agent for that home is stopped on exit."""
    if shutil.which("gpg") is None:
        raise ArkError("gpg is not installed (Debian package gpg): ark bundle signs the repository with it")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    try:
        fingerprint = _fingerprint(home)
        if fingerprint is None:
            progress(f"    making the bundle's signing key in {home} (kept there: keep it safe, reuse it)")
            _gpg(home, "--passphrase", "", "--quick-generate-key", f"{KEY_NAME} <ark-bundle@localhost>",
                 "ed25519", "sign", "never")
            fingerprint = _fingerprint(home)
            if fingerprint is None:
                raise ArkError(f"gpg made no secret key in {home}")
        public = _gpg(home, "--armor", "--export", fingerprint).stdout
        yield SigningKey(home, fingerprint, public)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)


def _fingerprint(home: Path) -> str | None:
    listing = _gpg(home, "--with-colons", "--list-secret-keys").stdout
    # A key with subkeys lists several fingerprints; the primary key's comes first.
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    return fingerprints[0] if fingerprints else None


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["gpg", "--homedir", str(home), "--batch", "--yes", "--quiet", "--pinentry-mode", "loopback", *args]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0 and "--list-secret-keys" not in args:
        raise ArkError(f"gpg {' '.join(args[:2])} failed: {' / '.join(result.stderr.strip().splitlines()[-3:])}")
    return result


# --- the repository ----------------------------------------------------------------------------


def fingerprint_of(debs: Sequence[Deb], key: SigningKey) -> str:
    text = "\n".join(sorted(d.filename for d in debs)) + "\n" + key.fingerprint + repr(sorted(RELEASE_FIELDS.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def build_repository(debs: Sequence[Deb], archives: Path, repo: Path, key: SigningKey, db: Path,
                     previous: str | None, progress: Progress) -> str:
    """`repo` as a flat repository of exactly `debs`; the indexes are remade and signed only when
    the set of packages or the key changed (`previous`, the fingerprint returned last time)."""
    repo.mkdir(parents=True, exist_ok=True)
    wanted = {d.filename for d in debs}
    for stale in repo.glob("*.deb"):
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        target = repo / name
        if not target.exists():
            _link_or_copy(archives / name, target)
    current = fingerprint_of(debs, key)
    if current == previous and all((repo / name).exists() for name in INDEX_FILES):
        progress(f"    {len(debs)} packages, indexes and signatures unchanged")
        return current
    if shutil.which("apt-ftparchive") is None:
        raise ArkError("apt-ftparchive is not installed (Debian package apt-utils)")
    progress(f"    indexing {len(debs)} packages (apt-ftparchive) and signing the Release with key {key.fingerprint}")
    for name in INDEX_FILES:
        (repo / name).unlink(missing_ok=True)
    packages = _ftparchive(repo, "--db", str(db), "packages", ".")
    _write(repo / "Packages", packages.encode())
    with gzip.GzipFile(repo / "Packages.gz", "wb", mtime=0) as out:
        out.write(packages.encode())
    release_options = [arg for field, value in RELEASE_FIELDS.items()
                       for arg in ("-o", f"APT::FTPArchive::Release::{field}={value}")]
    release = _ftparchive(repo, *release_options, "release", ".")
    _write(repo / "Release", release.encode())
    key.sign(repo / "Release", repo / "InRelease", clear=True)
    key.sign(repo / "Release", repo / "Release.gpg")
    return current


def _ftparchive(cwd: Path, *args: str) -> str:
    result = subprocess.run(["apt-ftparchive", "-q", *args], check=False, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ArkError(f"apt-ftparchive {args[-2]} failed: {' / '.join(result.stderr.strip().splitlines()[-3:])}")
    return result.stdout


def _write(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        out.write(data)
    Path(out.name).chmod(0o644)
    os.replace(out.name, path)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the cache and the bundle share a file system (no space, no time)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
