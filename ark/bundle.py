"""`ark bundle --out DIR`: everything a site with no route to the internet needs, in one directory.

DIR is the site's files repository (pillar ark:files_repo): any HTTP server can serve it, and
every file in it is checked by sha256 (SHA256SUMS at its root, signed by the bundle's key).

  kubernetes/<version>/      kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
  *.whl                      Salt with its dependencies for Debian 12's /usr/bin/python3, and the
                             arc-bridge wheel of this checkout with its dependencies, flat; hosts
                             install each set by URL with pip --require-hashes, the hashes from
                             pillar ark:wheels (pillar.yaml), never from this server
  images/*.oci.tar           the pod sandbox image (ark/pause:3.2) and a VO base image, OCI archives
  debian/                    a flat apt repository: every .deb the roles install and all they need,
                             Packages, Packages.gz, Release, InRelease, Release.gpg
  ark-bundle-key.asc         the public key that signs debian/Release and SHA256SUMS
  pillar.yaml                the pillar `ark` keys that make a site use this bundle
  SHA256SUMS, SHA256SUMS.asc

Where each part comes from: the Kubernetes and pause binaries and Salt's wheels from what
tools/setup-host builds (options name other places); arc-bridge's wheel built from the source
tree with Debian's /usr/bin/python3 (the hosts' interpreter), reproducibly (SOURCE_DATE_EPOCH),
its dependencies with the machine's pip configuration; the images by ark/images.py (or given as
OCI layouts); the Debian packages by ark/aptrepo.py from the machine's own apt sources.

The Kubernetes checksums go into pillar.yaml and the output, for ark:kubernetes:checksums: builds
from Debian's source are not bit-reproducible, so salt/ark/versions.yaml cannot pin them and each
bundle's own must be given. The wheels' sha256s go there too (ark:wheels), for the same reason
(Salt's are compiled here) and so that a host checks a wheel against the pillar, not against a
checksum file from the same plain-HTTP server. The signing key (gpg, --key-home) is made once and kept outside DIR;
hosts trust its public part through pillar ark:apt:repository:key.

A second run into the same DIR reuses what is there: files are linked or copied only when their
source changed, downloads go to a cache (--cache) and only what it lacks is fetched, apt's answer
is reused while the machine's apt configuration and lists are unchanged, the arc-bridge wheel
while its source is, indexes and signatures are remade only when what they cover changed, and
sha256 sums are kept per file (size, mtime, inode) in DIR/.ark-bundle-state.json.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import aptrepo, images
from .deploy import salt_version
from .errors import ArkError

CHECKOUT = Path(__file__).resolve().parents[1]
SALT_DIR = CHECKOUT / "salt"
# What tools/setup-host builds from Debian's source package (and the pause binary beside them).
KUBERNETES_BIN = Path("/var/cache/ark/kubernetes-1.20.5+really1.20.2/bin")
SALT_WHEELS = Path("/var/cache/ark/salt-wheels")
CACHE = Path("/var/cache/ark/bundle")
KEY_HOME = Path.home() / ".local/share/ark/bundle-key"
KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")
# Debian's interpreter: what the hosts run Salt and arkd with, so the wheels are built for it.
DEBIAN_PYTHON = "/usr/bin/python3"
# Every package a pkg state of the roles installs (salt/*/installed.sls, salt/kubernetes/pki.sls;
# tests/salt/test_render.py checks that the rendered states name no other).
DEBIAN_PACKAGES = (
    # worker: salt/kubernetes/node/installed.sls
    "containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "socat",
    # control-plane: salt/kubernetes/control_plane/installed.sls, and salt/kubernetes/pki.sls
    "etcd-server", "openssl",
    # registry: salt/registry/installed.sls
    "docker-registry", "nginx", "apache2-utils",
    # ce: salt/arex/installed.sls, salt/arc_bridge/installed.sls
    "nordugrid-arc-arex", "nordugrid-arc-plugins-arcrest", "nordugrid-arc-arcctl", "nordugrid-arc-plugins-needed",
    "procps", "python3-venv",
    # ce and worker, with a session volume ARK serves: salt/sessions/served.sls, client.sls
    "glusterfs-server", "glusterfs-client",
)
IMAGES = {"pause": "images/ark-pause-3.2.oci.tar", "vo-base": "images/vo-base.oci.tar"}
KEY_FILE = "ark-bundle-key.asc"
PILLAR_FILE = "pillar.yaml"
SUMS = "SHA256SUMS"
STATE = ".ark-bundle-state.json"
# A wheel built twice from the same source is the same file, so its sha256 in ark:wheels (and
# every host's stamp of it) changes only when the source does.
WHEEL_EPOCH = "315532800"

Progress = Callable[[str], None]


def say(line: str) -> None:
    print(f"==> {line}", flush=True)


def served_at(bundle_pillar: dict[str, Any], url: str) -> dict[str, Any]:
    """A bundle's pillar `ark` keys (its pillar.yaml's) for the bundle served at `url`."""
    url = url.rstrip("/")
    apt = bundle_pillar.get("apt") or {}
    return {**bundle_pillar, "files_repo": url,
            "apt": {**apt, "proxy": "", "repository": {**(apt.get("repository") or {}), "url": f"{url}/debian"}}}


def add_bundle(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "bundle", help="build the directory a site with no internet serves as its files repository",
        description="Build DIR, the site's files repository (pillar ark:files_repo) for a site with no route to the "
                    "internet: the Kubernetes binaries, Salt's and arc-bridge's wheels, the pause and VO base "
                    "images as OCI archives, and a signed apt repository (debian/) with every Debian package the "
                    "roles install and all they depend on. Serve DIR with any HTTP server and set the pillar keys "
                    "ark bundle prints (also in DIR/pillar.yaml): ark:files_repo, ark:apt:repository, "
                    "ark:kubernetes:checksums, ark:bridge:wheel. Running it again into the same DIR reuses what is "
                    "there and fetches only what changed.",
        epilog="Downloads come from the machine's own apt sources and pip configuration. Kubernetes binaries "
               "built from Debian's source are not bit-reproducible, so their checksums are each bundle's own: "
               "salt/ark/versions.yaml cannot pin them, the site's pillar (ark:kubernetes:checksums) does.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the bundle directory (made if missing)")
    parser.add_argument("--url", metavar="URL",
                        help="where the site will serve DIR (its ark:files_repo, e.g. http://10.0.0.5:8080/ark); "
                             "fills in pillar.yaml, which otherwise says <files_repo>")
    parser.add_argument("--kubernetes-bin", type=Path, default=KUBERNETES_BIN, metavar="DIR",
                        help="the Kubernetes binaries and the pause binary (default: what tools/setup-host builds, "
                             "%(default)s)")
    parser.add_argument("--kubernetes-version", metavar="VERSION",
                        help="the version they are (default: ark:kubernetes:version of salt/ark/defaults.yaml)")
    parser.add_argument("--salt-wheels", type=Path, default=SALT_WHEELS, metavar="DIR",
                        help="wheels of Salt and its dependencies for Debian 12's python3 (default: %(default)s, "
                             "where tools/setup-host builds them; built into --cache if they are not there)")
    parser.add_argument("--source", type=Path, default=CHECKOUT, metavar="DIR",
                        help="the arc-bridge source tree whose wheel goes in (default: this checkout, %(default)s)")
    parser.add_argument("--pause-layout", type=Path, metavar="LAYOUT",
                        help="an OCI layout (tag latest) to use as the pause image instead of building one from "
                             "the pause binary in --kubernetes-bin")
    parser.add_argument("--vo-base-layout", type=Path, metavar="LAYOUT",
                        help="an OCI layout (tag latest) to use as the VO base image instead of building one "
                             "with debootstrap")
    parser.add_argument("--key-home", type=Path, default=KEY_HOME, metavar="DIR",
                        help="gpg home holding the bundle's signing key, made on first use and reused after: the "
                             "hosts trust it through pillar (default: %(default)s; never inside DIR)")
    parser.add_argument("--cache", type=Path, default=CACHE, metavar="DIR",
                        help="downloads and builds kept between runs (default: %(default)s)")
    parser.set_defaults(run=run_bundle)


def run_bundle(args: argparse.Namespace) -> None:
    out = args.out.resolve()
    key_home = args.key_home.resolve()
    if key_home == out or out in key_home.parents:
        raise ArkError(f"--key-home {key_home} is inside the bundle {out}, which is served to everyone: "
                       "keep the signing key elsewhere")
    version = args.kubernetes_version or default_kubernetes_version()
    bundle = Bundle(out=out, cache=args.cache.resolve(), progress=say)
    started = time.monotonic()
    with bundle.locked(), aptrepo.signing_key(key_home, say) as key:
        bundle.load_state()
        checksums = bundle.kubernetes(args.kubernetes_bin, version)
        wheels = bundle.wheels(args.salt_wheels, args.source)
        bundle.images(args.kubernetes_bin / "pause", args.pause_layout, args.vo_base_layout)
        bundle.debian(key)
        pillar = bundle.pillar(args.url, key, version, checksums, wheels)
        bundle.sums(key)
        bundle.save_state()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    say(f"bundle {out}: {bundle.file_count} files, {size / 2**20:.0f} MiB, in {time.monotonic() - started:.0f} s")
    say(f"signing key {key.fingerprint} (secret part in {key_home}; public part {out / KEY_FILE})")
    say(f"pillar for this bundle (also {out / PILLAR_FILE}):")
    print(pillar, end="", flush=True)
    say(f"push the images as the site admin, e.g.: skopeo copy oci-archive:{out / IMAGES['pause']} "
        "docker://REGISTRY:5000/ark/pause:3.2")


def default_kubernetes_version() -> str:
    defaults = yaml.safe_load((SALT_DIR / "ark" / "defaults.yaml").read_text())
    return str(defaults["kubernetes"]["version"])


@dataclass
class Bundle:
    out: Path
    cache: Path
    progress: Progress
    state: dict[str, Any] = field(default_factory=dict)
    file_count: int = 0
    started: float = field(default_factory=time.monotonic)

    # --- bookkeeping ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One ark bundle at a time per DIR and per cache: a second one waits for the first."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.out / ".ark-bundle.lock").open("w") as lock, (self.cache / ".lock").open("w") as cache_lock:
            for f, what in ((lock, self.out), (cache_lock, self.cache)):
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.step(f"waiting for another ark bundle using {what}")
                    fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def load_state(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.state = json.loads((self.out / STATE).read_text())
        self.state.setdefault("sha256", {})

    def save_state(self) -> None:
        _write_if_changed(self.out / STATE, json.dumps(self.state, indent=1, sort_keys=True) + "\n")

    def sha256(self, path: Path) -> str:
        """The file's sha256, remembered by (size, mtime, inode) so a warm run reads nothing twice."""
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = self.state["sha256"].get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        self.state["sha256"][str(path)] = [stamp, digest.hexdigest()]
        return digest.hexdigest()

    def step(self, text: str) -> None:
        """A progress line, with the seconds since the bundle started."""
        self.progress(f"[{time.monotonic() - self.started:5.0f} s] {text}")

    # --- Kubernetes ----------------------------------------------------------------------------

    def kubernetes(self, source: Path, version: str) -> dict[str, str]:
        self.step(f"Kubernetes {version}: binaries from {source}")
        target = self.out / "kubernetes" / version
        target.mkdir(parents=True, exist_ok=True)
        checksums = {}
        for name in KUBERNETES_BINARIES:
            if not (source / name).is_file():
                raise ArkError(f"--kubernetes-bin {source}: no {name} (tools/setup-host builds them there)")
            place(source / name, target / name)
            checksums[name] = self.sha256(target / name)
        # Other versions stay (hosts not yet upgraded still fetch theirs); remove them by hand.
        others = sorted(p.name for p in (self.out / "kubernetes").iterdir() if p.name != version)
        if others:
            self.step(f"    also in the bundle, left as they are: Kubernetes {', '.join(others)}")
        return checksums

    # --- wheels --------------------------------------------------------------------------------

    def build_venv(self) -> Path:
        """A virtualenv of Debian's python3 (the hosts' interpreter) whose pip builds the wheels."""
        venv = self.cache / "build-venv"
        if not (venv / "bin" / "pip").exists():
            if not Path(DEBIAN_PYTHON).exists():
                raise ArkError(f"{DEBIAN_PYTHON} is missing: the wheels are built for Debian 12's own python3")
            self.step(f"    making a build virtualenv of {DEBIAN_PYTHON} in {venv}")
            shutil.rmtree(venv, ignore_errors=True)
            _run([DEBIAN_PYTHON, "-m", "venv", str(venv)], "python3 -m venv (Debian package python3-venv)")
        return venv

    def wheels(self, salt_wheels: Path, source: Path) -> dict[str, dict[str, str]]:
        """Salt's and arc-bridge's wheels at the bundle root; returns each set's wheels with their
        sha256s, for pillar ark:wheels ({"salt": {file: sha256}, "bridge": {...}})."""
        salt = salt_version(SALT_DIR)
        if not any(salt_wheels.glob(f"salt-{salt}-*.whl")):
            salt_wheels = self.cache / f"salt-{salt}-wheels"
            if not any(salt_wheels.glob(f"salt-{salt}-*.whl")):
                self.step(f"Salt {salt}: building its wheels into {salt_wheels} (compiles timelib: minutes, once)")
                pip = self.build_venv() / "bin" / "pip"
                with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                    _run([str(pip), "wheel", "--quiet", "-w", tmp, f"salt=={salt}"], "pip wheel salt")
                    shutil.rmtree(salt_wheels, ignore_errors=True)
                    shutil.copytree(tmp, salt_wheels)
        self.step(f"wheels: Salt {salt} and its dependencies from {salt_wheels}")
        salt_set = set()
        for wheel in sorted(salt_wheels.glob("*.whl")):
            place(wheel, self.out / wheel.name)
            salt_set.add(wheel.name)
        wanted = set(salt_set)

        self.step(f"wheels: arc-bridge from {source}, and its dependencies")
        _, closure = self.bridge(source)
        wanted |= closure
        for stale in self.out.glob("*.whl"):
            if stale.name not in wanted:
                stale.unlink()
        for stale in self.out.glob("*.whl.sha256"):  # what bundles before ark:wheels had
            stale.unlink()
        self.check_installable(f"salt=={salt}", wanted)
        return {"salt": {name: self.sha256(self.out / name) for name in sorted(salt_set)},
                        "bridge": {name: self.sha256(self.out / name) for name in sorted(closure)}}

    def bridge(self, source: Path) -> tuple[str, set[str]]:
        """The arc-bridge wheel built from `source` and every wheel it installs with (itself
        included); what the last run made is kept while the source is the same."""
        if not (source / "pyproject.toml").is_file():
            raise ArkError(f"--source {source}: no pyproject.toml, not the arc-bridge source tree")
        digest = source_digest(source)
        last = self.state.get("bridge") or {}
        if (last.get("source") == digest and (self.out / str(last.get("wheel"))).exists()
                and all((self.out / name).exists() for name in last.get("closure", [None]))):
            self.step(f"    {last['wheel']}: source unchanged, wheel and dependencies there")
            return last["wheel"], set(last["closure"])
        wheel = self.bridge_wheel(source)
        closure = self.bridge_dependencies(wheel)
        self.state["bridge"] = {"source": digest, "wheel": wheel, "closure": sorted(closure)}
        return wheel, closure

    def bridge_wheel(self, source: Path) -> str:
        pip = self.build_venv() / "bin" / "pip"
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            # A copy of what the wheel is built from, so the build writes nothing into the checkout.
            tree, built = Path(tmp) / "src", Path(tmp) / "wheel"
            tree.mkdir()
            shutil.copy2(source / "pyproject.toml", tree / "pyproject.toml")
            for package in packages(source):
                shutil.copytree(source / package, tree / package,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            _run([str(pip), "wheel", "--quiet", "--no-deps", "-w", str(built), str(tree)], "pip wheel arc-bridge",
                 env={**os.environ, "SOURCE_DATE_EPOCH": WHEEL_EPOCH})
            (wheel,) = built.glob("*.whl")
            target = self.out / wheel.name
            if not target.exists() or target.read_bytes() != wheel.read_bytes():
                self.step(f"    {wheel.name}: new build")
                shutil.copy2(wheel, target.with_name(f".{wheel.name}.partial"))
                target.with_name(f".{wheel.name}.partial").rename(target)
            else:
                self.step(f"    {wheel.name}: unchanged")
        return wheel.name

    def bridge_dependencies(self, bridge: str) -> set[str]:
        """The wheels arc-bridge installs with, as a host resolves them: from the bundle alone
        (--no-index); those missing are fetched with the machine's pip configuration."""
        pip = str(self.build_venv() / "bin" / "pip")
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            offline = [pip, "wheel", "--quiet", "--no-index", "--find-links", str(self.out), "-w", tmp,
                       str(self.out / bridge)]
            if subprocess.run(offline, check=False, capture_output=True, text=True).returncode != 0:
                fetched = self.cache / "bridge-wheels"
                self.step(f"    fetching arc-bridge's dependencies into {fetched}")
                _run([pip, "wheel", "--quiet", "-w", str(fetched), str(self.out / bridge)], "pip wheel (dependencies)")
                for wheel in fetched.glob("*.whl"):
                    if wheel.name != bridge:
                        place(wheel, self.out / wheel.name)
                shutil.rmtree(tmp)
                Path(tmp).mkdir()
                _run(offline, "pip wheel --no-index (arc-bridge from the bundle alone)")
            return {wheel.name for wheel in Path(tmp).glob("*.whl")}

    def check_installable(self, requirement: str, wheels: set[str]) -> None:
        """Salt resolves from the bundle alone, as `ark deploy` installs it (checked when the set
        of wheels changed)."""
        stamp = hashlib.sha256("\n".join(sorted(wheels)).encode()).hexdigest()
        if self.state.get("wheels") == stamp:
            return
        pip = str(self.build_venv() / "bin" / "pip")
        _run([pip, "install", "--quiet", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(self.out),
              requirement], f"pip install --no-index {requirement} from the bundle alone")
        self.state["wheels"] = stamp

    # --- images --------------------------------------------------------------------------------

    def images(self, pause_binary: Path, pause: Path | None, vo_base: Path | None) -> None:
        cache = self.cache / "images"
        layouts = {
            "pause": pause or images.pause_layout(pause_binary, cache, self.step),
            "vo-base": vo_base or images.vo_base_layout(cache, self.step),
        }
        recorded = self.state.setdefault("images", {})
        for name, layout in layouts.items():
            archive = self.out / IMAGES[name]
            digest = images.layout_digest(layout)
            if archive.exists() and recorded.get(name) == digest:
                self.step(f"image {name}: {archive.relative_to(self.out)} unchanged ({digest[:19]})")
                continue
            self.step(f"image {name}: {layout} -> {archive.relative_to(self.out)}")
            images.write_archive(layout, archive)
            recorded[name] = digest

    # --- Debian --------------------------------------------------------------------------------

    def debian(self, key: aptrepo.SigningKey) -> None:
        apt_cache = self.cache / "apt"
        # apt's answer is the same while its configuration and lists are (until an apt-get update).
        fingerprint = aptrepo.apt_fingerprint(DEBIAN_PACKAGES)
        resolved = self.state.get("resolved") or {}
        if resolved.get("apt") == fingerprint:
            debs = [aptrepo.Deb(*deb) for deb in resolved["debs"]]
            self.step(f"Debian packages: {len(debs)} for the {len(DEBIAN_PACKAGES)} role packages, as resolved last "
                      "time (the machine's apt configuration and lists are unchanged)")
        else:
            self.step(f"Debian packages: resolving the {len(DEBIAN_PACKAGES)} role packages with everything they need")
            debs = aptrepo.resolve(DEBIAN_PACKAGES, apt_cache)
            self.state["resolved"] = {"apt": fingerprint, "debs": [[d.name, d.version, d.arch] for d in debs]}
        archives = aptrepo.download(debs, DEBIAN_PACKAGES, apt_cache, self.step)
        self.step(f"Debian repository: {len(debs)} packages into debian/")
        self.state["debian"] = aptrepo.build_repository(
            debs, archives, self.out / "debian", key, apt_cache / "ftparchive.db", self.state.get("debian"),
            self.step)

    # --- what the admin gets -------------------------------------------------------------------

    def pillar(self, url: str | None, key: aptrepo.SigningKey, version: str, checksums: dict[str, str],
               wheels: dict[str, dict[str, str]]) -> str:
        _write_if_changed(self.out / KEY_FILE, key.public)
        files_repo = url.rstrip("/") if url else "<files_repo>"
        pillar = {"ark": {
            "files_repo": files_repo,
            "apt": {"proxy": "", "repository": {"url": f"{files_repo}/debian", "key": key.public}},
            "kubernetes": {"version": version, "checksums": {version: checksums}},
            "wheels": wheels,
        }}
        text = (
            "# Pillar `ark` keys for a site whose files repository (ark:files_repo) serves this bundle, made by\n"
            "# ark bundle: merge them into the site's pillar (or the inventory's site.settings)."
            + ("" if url else " Replace <files_repo>\n# with the URL the site serves the bundle at (or run ark bundle "
                              "--url URL).") + "\n"
            "# The Kubernetes and wheel checksums are this bundle's own: binaries built from Debian's source\n"
            "# and Salt's compiled wheels are not bit-reproducible, so salt/ark/versions.yaml cannot pin them\n"
            "# and the pillar does.\n"
            + yaml.dump(pillar, Dumper=_PillarDumper, default_flow_style=False, sort_keys=False, width=1000)
        )
        _write_if_changed(self.out / PILLAR_FILE, text)
        return text

    def sums(self, key: aptrepo.SigningKey) -> None:
        """SHA256SUMS over every file of the bundle (`sha256sum -c SHA256SUMS` in DIR), signed."""
        self.step("SHA256SUMS over the whole bundle")
        skip = {SUMS, f"{SUMS}.asc"}
        files = sorted(p for p in self.out.rglob("*")
                       if p.is_file() and p.name not in skip and not any(part.startswith(".")
                                                                          for part in p.relative_to(self.out).parts))
        lines = "".join(f"{self.sha256(p)}  {p.relative_to(self.out)}\n" for p in files)
        known = {str(p) for p in files}
        self.state["sha256"] = {k: v for k, v in self.state["sha256"].items() if k in known}
        if _write_if_changed(self.out / SUMS, lines) or not (self.out / f"{SUMS}.asc").exists():
            key.sign(self.out / SUMS, self.out / f"{SUMS}.asc", armor=True)
        self.file_count = len(files) + 2


def source_digest(source: Path) -> str:
    """sha256 over what the arc-bridge wheel is built from: pyproject.toml and the packages."""
    digest = hashlib.sha256()
    files = [source / "pyproject.toml"] + sorted(
        path for package in packages(source) for path in (source / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")
    for path in files:
        digest.update(f"{path.relative_to(source)}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def packages(source: Path) -> list[str]:
    """The top-level packages the wheel is built from: those pyproject.toml's setuptools `find`
    includes (arc_bridge*, ark*), else every directory with an __init__.py."""
    config = tomllib.loads((source / "pyproject.toml").read_text())
    include = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get("include", ["*"])
    return sorted(entry.name for entry in source.iterdir()
                  if (entry / "__init__.py").exists() and any(fnmatch.fnmatch(entry.name, p) for p in include))


class _PillarDumper(yaml.SafeDumper):
    """Multi-line strings (the public key) as literal blocks, as an admin pastes them."""


_PillarDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def place(source: Path, target: Path) -> None:
    """`target` as a copy of `source`: a hard link where they share a file system, kept as it is
    when it already has the source's size and modification time."""
    st = source.stat()
    with contextlib.suppress(FileNotFoundError):
        tt = target.stat()
        if (tt.st_size, tt.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            return
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copy2(source, partial)
    partial.rename(target)


def _write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file holds it already (an unchanged file keeps its mtime, so its
    sum is not recomputed); True if written."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.rename(path)
    return True


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        raise ArkError(f"{what}: {argv[0]} not found") from None
    if result.returncode != 0:
        tail = " / ".join((result.stderr + result.stdout).strip().splitlines()[-4:])
        raise ArkError(f"{what} failed (exit {result.returncode}): {tail}")
