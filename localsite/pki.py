"""A throw-away certificate authority for the local cluster, made with the openssl command line.

Keys are ECDSA P-256: every Kubernetes component accepts them and they are generated instantly,
so a fresh PKI per cluster start costs well under a second.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = 30  # a test cluster lives for minutes; a month leaves room for a clock that is off


@dataclass(frozen=True)
class CertKey:
    cert: Path
    key: Path


def make_ca(pki_dir: Path, cn: str) -> CertKey:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = CertKey(pki_dir / "ca.crt", pki_dir / "ca.key")
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", ca.key, "-subj", f"/CN={cn}", "-days", DAYS, "-out", ca.cert,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return ca


def issue(
    ca: CertKey,
    name: str,
    *,
    cn: str,
    groups: list[str] = [],
    client: bool = False,
    server_sans: list[str] = [],
) -> CertKey:
    """Sign a leaf certificate `<name>.crt` next to the CA.

    Kubernetes reads the user from CN and the groups from the O fields of a client certificate.
    `server_sans` are openssl subjectAltName entries ("IP:10.0.0.1", "DNS:kubernetes"); giving any
    makes the certificate valid for serving TLS.
    """
    pki_dir = ca.cert.parent
    leaf = CertKey(pki_dir / f"{name}.crt", pki_dir / f"{name}.key")
    csr, ext = pki_dir / f"{name}.csr", pki_dir / f"{name}.ext"
    _new_key(leaf.key)
    subject = "".join(f"/O={g}" for g in groups) + f"/CN={cn}"
    _openssl("req", "-new", "-key", leaf.key, "-subj", subject, "-out", csr)
    usages = (["clientAuth"] if client else []) + (["serverAuth"] if server_sans else [])
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    if server_sans:
        lines.append(f"subjectAltName={','.join(server_sans)}")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", DAYS, "-extfile", ext, "-out", leaf.cert,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return leaf


def make_key_pair(private: Path, public: Path) -> None:
    """Service-account token signing pair: controller-manager signs, apiserver verifies."""
    _new_key(private)
    _openssl("pkey", "-in", private, "-pubout", "-out", public)


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    path.chmod(0o600)


def _openssl(*args: object) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")
