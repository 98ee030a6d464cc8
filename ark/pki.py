"""Certificate authorities made with the openssl command line: the site CA `ark init` makes once
and keeps (and the short-lived ones the tests make).

Keys are ECDSA P-256: every Kubernetes component accepts them and they are generated instantly.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ArkError

DAYS = 30  # a test's CA lives for minutes; a month leaves room for a clock that is off
# A site CA is in every host's pillar and every certificate chains to it: replacing it means
# re-issuing everything, so it lives about as long as the hardware.
SITE_CA_DAYS = 3650
SITE_CA_CN = "ark-site-ca"


@dataclass(frozen=True)
class CertKey:
    cert: Path
    key: Path


@dataclass(frozen=True)
class CaPem:
    """A CA as the pillar holds it (ark:pki:ca): certificate and unencrypted key, PEM text."""

    cert: str
    key: str


class CaError(ArkError):
    """A CA that cannot sign for the site; `part` names the file at fault, "cert" or "key"."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


def make_ca(pki_dir: Path, cn: str, days: int = DAYS) -> CertKey:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = CertKey(pki_dir / "ca.crt", pki_dir / "ca.key")
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", ca.key, "-subj", f"/CN={cn}", "-days", days, "-out", ca.cert,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return ca


def new_site_ca() -> CaPem:
    """A fresh site CA; its files exist only while it is read."""
    with tempfile.TemporaryDirectory(prefix="ark-site-ca-") as directory:
        return read_ca(make_ca(Path(directory), SITE_CA_CN, days=SITE_CA_DAYS))


def check_ca(ca: CertKey) -> None:
    """Refuse what Salt would refuse later on every host (ark/map.jinja), or what would make
    every certificate it issues useless: not a CA, expired, encrypted key, or another key."""
    try:
        cert_info = _openssl("x509", "-in", ca.cert, "-noout", "-pubkey", "-ext", "basicConstraints")
    except ArkError:
        raise CaError("cert", f"{ca.cert} is not a PEM certificate") from None
    if "CA:TRUE" not in cert_info:
        raise CaError("cert", f"{ca.cert} is not a CA certificate (basicConstraints CA:TRUE)")
    try:
        _openssl("x509", "-in", ca.cert, "-noout", "-checkend", "0")
    except ArkError:
        raise CaError("cert", f"{ca.cert} has expired") from None
    if b"ENCRYPTED" in ca.key.read_bytes():
        raise CaError("key", f"{ca.key} is encrypted: Salt signs with it unattended, so give it unencrypted")
    try:
        key_public = _openssl("pkey", "-in", ca.key, "-pubout", "-passin", "pass:")
    except ArkError:
        raise CaError("key", f"{ca.key} is not a PEM private key") from None
    if key_public.strip() not in cert_info:
        raise CaError("key", f"{ca.key} is not the private key of {ca.cert}")


def read_ca(ca: CertKey) -> CaPem:
    check_ca(ca)
    return CaPem(ca.cert.read_text(), ca.key.read_text())


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)


def _openssl(*args: object) -> str:
    # No stdin: a passphrase prompt must fail, not wait for a terminal.
    try:
        result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ArkError("openssl is not installed (Debian package openssl)") from None
    if result.returncode != 0:
        raise ArkError(f"openssl {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
