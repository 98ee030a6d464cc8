"""A small client of the Docker Registry HTTP API v2, stdlib only: a manifest for one platform and
its layers, streamed and checked against their digests.

The registry is the site's own (Docker Distribution behind nginx: TLS from the site CA, HTTP Basic
auth). Credentials go only to the registry the image names, over TLS. What a registry sends is
checked as it is read: a manifest against the digest it was asked by, a layer against its
descriptor's digest and size. Every failure is a RegistryError with a one-line message.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import BridgeError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST))
MAX_MANIFEST_BYTES = 4 << 20  # Docker Distribution's own limit
MAX_LAYERS = 1000
MAX_REDIRECTS = 3
CHUNK = 1 << 16

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
REFERENCE = re.compile(
    rf"^(?P<host>{_LABEL}(?:\.{_LABEL})*(?::(?P<port>[0-9]{{1,5}}))?)"
    rf"/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$")


class RegistryError(BridgeError):
    """The registry could not be asked, or refused, or sent something that is not what was asked for."""


@dataclass(frozen=True)
class ImageRef:
    host: str  # host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None  # wins over the tag

    @property
    def reference(self) -> str:
        """What the registry is asked for: the digest, else the tag (Kubernetes' "latest" if none)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return (f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else "")
                + (f"@{self.digest}" if self.digest else ""))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Fetched:
    """A manifest or index as the registry sent it, with the digest of its bytes."""

    digest: str
    media_type: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Manifest:
    """An image manifest for one platform: its digest and its layers, lowest first."""

    digest: str
    media_type: str
    layers: tuple[Descriptor, ...]
    index_digest: str | None = None  # the index (manifest list) it was picked from


def parse_ref(text: str) -> ImageRef:
    """`host[:port]/repo/path[:tag][@sha256:...]`; anything else is refused naming it."""
    m = REFERENCE.match(text)
    if not m or (m["port"] and not 0 < int(m["port"]) < 65536) or len(m["repository"]) > 255:
        raise RegistryError(f"{text!r} is not an image reference like registry.example.org:5000/vo/image:tag")
    return ImageRef(m["host"], m["repository"], m["tag"], m["digest"])


def load_auths(path: str | Path) -> dict[str, tuple[str, str]]:
    """(username, password) by registry host[:port], from a Docker config JSON file's "auths":
    each entry's "auth" (base64 of user:password) or "username" and "password"."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise RegistryError(f"cannot read registry credentials {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise RegistryError(f"registry credentials {path} are not JSON: {e}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise RegistryError(f"registry credentials {path} have no \"auths\" object")
    found = {}
    for key, entry in auths.items():
        host = re.sub(r"^[a-z]+://", "", str(key)).split("/", 1)[0]
        if not isinstance(entry, dict):
            raise RegistryError(f"registry credentials {path}: auths.{key} is not an object")
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            found[host] = (entry["username"], entry["password"])
        elif isinstance(entry.get("auth"), str):
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except ValueError:
                sep = ""
            if not sep:
                raise RegistryError(f"registry credentials {path}: auths.{key}.auth is not base64 of user:password")
            found[host] = (user, password)
    return found


class Registry:
    """Asks registries over HTTPS, trusting `ca_file` (else the system's CAs), each request's
    connect and every read within `timeout` seconds."""

    def __init__(self, auths: Mapping[str, tuple[str, str]] | None = None, ca_file: str | Path | None = None,
                 timeout: float = 10.0, platform: str = "linux/amd64", context: ssl.SSLContext | None = None) -> None:
        self.auths = dict(auths or {})
        self.timeout = timeout
        self.os, _, self.architecture = platform.partition("/")
        if context is None:
            try:
                context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            except (OSError, ssl.SSLError) as e:
                raise RegistryError(f"cannot load the registry CA bundle {ca_file}: {e.strerror or e}") from None
        self.context = context

    @classmethod
    def from_files(cls, docker_config: str | Path | None = None, ca_file: str | Path | None = None,
                   **options: Any) -> Registry:
        """A client with the credentials of a Docker config JSON file and a CA bundle."""
        return cls(load_auths(docker_config) if docker_config else {}, ca_file, **options)

    def manifest(self, ref: ImageRef) -> Manifest:
        """The image manifest for this client's platform, through an index if the reference names one."""
        return self.platform_manifest(ref, self.fetch_manifest(ref))

    def fetch_manifest(self, ref: ImageRef, reference: str | None = None) -> Fetched:
        """The manifest or index `reference` (default the ref's digest or tag) names: one request."""
        reference = reference or ref.reference
        conn, resp = self._get(ref, f"/v2/{ref.repository}/manifests/{reference}", ACCEPT, f"image {ref}")
        try:
            body = resp.read(MAX_MANIFEST_BYTES + 1)
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(f"registry {ref.host} stopped sending the manifest of {ref}: {_reason(e)}") from None
        finally:
            conn.close()
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"registry {ref.host} sent a manifest for {ref} over {MAX_MANIFEST_BYTES} bytes")
        algorithm = reference.partition(":")[0] if DIGEST.match(reference) else "sha256"
        digest = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
        said = resp.getheader("Docker-Content-Digest")
        if (DIGEST.match(reference) and digest != reference) or (said and said.startswith(f"{algorithm}:") and said != digest):
            raise RegistryError(f"registry {ref.host} sent a manifest for {ref} that does not match its digest")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise RegistryError(f"registry {ref.host} sent a manifest for {ref} that is not a JSON object")
        media_type = document.get("mediaType") or (resp.getheader("Content-Type") or "").partition(";")[0].strip()
        return Fetched(digest, str(media_type), document)

    def platform_manifest(self, ref: ImageRef, fetched: Fetched) -> Manifest:
        """`fetched` if it is an image manifest; if an index, the manifest it lists for this client's
        platform (one more request)."""
        if not _is_index(ref, fetched):
            return _manifest(ref, fetched, None)
        entries = fetched.document.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError(f"registry {ref.host} sent an invalid index for {ref}: \"manifests\" is not a list")
        chosen = None
        for entry in entries:
            platform = entry.get("platform") if isinstance(entry, dict) else None
            if (isinstance(platform, dict) and platform.get("os") == self.os
                    and platform.get("architecture") == self.architecture):
                chosen = _descriptor(ref, entry)
                break
        if chosen is None:
            raise RegistryError(f"image {ref} has no manifest for {self.os}/{self.architecture}")
        child = self.fetch_manifest(ref, chosen.digest)
        if _is_index(ref, child):
            raise RegistryError(f"image {ref} lists an index inside its index, which arkd does not follow")
        return _manifest(ref, child, fetched.digest)

    def open_blob(self, ref: ImageRef, descriptor: Descriptor, deadline: float | None = None) -> Blob:
        """A layer's bytes as a stream; read to its end, checked against the descriptor's digest.
        `deadline` (time.monotonic()) bounds the whole read."""
        if not DIGEST.match(descriptor.digest):
            raise RegistryError(f"image {ref} has a layer with an invalid digest")
        what = f"layer {descriptor.digest} of image {ref}"
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise RegistryError(f"reading image {ref} took longer than its time budget")
        conn, resp = self._get(ref, f"/v2/{ref.repository}/blobs/{descriptor.digest}", "*/*", what, timeout)
        return Blob(conn, resp, ref, descriptor, deadline, self.timeout)

    def _get(self, ref: ImageRef, path: str, accept: str, what: str, timeout: float | None = None
             ) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        """GET with credentials for the ref's registry, following a few redirects (credentials only
        to the registry itself, and only over https). The response is 200; the caller closes."""
        host = ref.host
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": accept, "User-Agent": "arkd"}
            if host == ref.host and host in self.auths:
                user, password = self.auths[host]
                headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            conn = http.client.HTTPSConnection(host, context=self.context, timeout=timeout or self.timeout)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise RegistryError(f"cannot reach registry {host}: {_reason(e)}") from None
            if resp.status == 200:
                return conn, resp
            location = resp.getheader("Location")
            conn.close()
            if resp.status in (301, 302, 303, 307, 308) and location:
                target = urlsplit(urljoin(f"https://{host}{path}", location))
                if target.scheme != "https" or not target.netloc:
                    raise RegistryError(f"registry {ref.host} redirected {what} to {target.scheme or '?'}://, not https")
                host, path = target.netloc, target.path + (f"?{target.query}" if target.query else "")
                continue
            raise RegistryError(self._refusal(ref, host, resp.status, resp.reason, what))
        raise RegistryError(f"registry {ref.host} redirected {what} more than {MAX_REDIRECTS} times")

    def _refusal(self, ref: ImageRef, host: str, status: int, reason: str, what: str) -> str:
        if status == 401:
            if host in self.auths:
                return f"registry {host} rejected the credentials of user {self.auths[host][0]!r} for {what}"
            return f"registry {host} asks for credentials for {what}, and arkd has none for {host}"
        if status == 403:
            return f"registry {host} denied access to {what}"
        if status == 404:
            return f"{what} not found" + (f" at {host}" if host != ref.host else "")
        return f"registry {host} answered HTTP {status} {reason} for {what}"


class Blob:
    """A layer being read: at most its descriptor's size, hashed as it goes; at its end the digest
    must match, or reading raises RegistryError. A context manager; `drain` reads to the end."""

    def __init__(self, conn: http.client.HTTPSConnection, resp: http.client.HTTPResponse, ref: ImageRef,
                 descriptor: Descriptor, deadline: float | None, timeout: float) -> None:
        self.conn, self.resp, self.ref, self.descriptor = conn, resp, ref, descriptor
        self.deadline, self.timeout = deadline, timeout
        self.hash = hashlib.new(descriptor.digest.partition(":")[0])
        self.remaining = descriptor.size
        self.verified = False

    def read(self, size: int = -1) -> bytes:
        if self.remaining == 0:
            self._verify()
            return b""
        size = CHUNK if size is None or size < 0 else size
        self._bound_time()
        try:
            data = self.resp.read(min(size, self.remaining))
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(f"registry {self.ref.host} stopped sending {self._what()}: {_reason(e)}") from None
        if not data:
            raise RegistryError(f"registry {self.ref.host} sent {self._what()} short: "
                                f"{self.descriptor.size - self.remaining} of {self.descriptor.size} bytes")
        self.hash.update(data)
        self.remaining -= len(data)
        if self.remaining == 0:
            self._verify()
        return data

    def drain(self) -> None:
        """Read what is left (a tar reader stops at the archive's end, before the blob's): the
        digest is checked only over the whole blob."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Blob:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _verify(self) -> None:
        if not self.verified:
            digest = f"{self.descriptor.digest.partition(':')[0]}:{self.hash.hexdigest()}"
            if digest != self.descriptor.digest:
                raise RegistryError(f"registry {self.ref.host} sent {self._what()} with the wrong content "
                                    f"(its digest is {digest})")
            self.verified = True

    def _bound_time(self) -> None:
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RegistryError(f"reading image {self.ref} took longer than its time budget")
        if self.conn.sock is not None:
            self.conn.sock.settimeout(min(self.timeout, left))

    def _what(self) -> str:
        return f"layer {self.descriptor.digest} of image {self.ref}"


def _is_index(ref: ImageRef, fetched: Fetched) -> bool:
    document = fetched.document
    if document.get("schemaVersion") == 1:
        raise RegistryError(f"image {ref} has a Docker schema 1 manifest, which arkd does not read")
    if fetched.media_type in (OCI_INDEX, DOCKER_LIST) or ("manifests" in document and "layers" not in document):
        return True
    if fetched.media_type in (OCI_MANIFEST, DOCKER_MANIFEST, "") and "layers" in document:
        return False
    raise RegistryError(f"image {ref} is not a container image (its manifest is {fetched.media_type or 'untyped'})")


def _manifest(ref: ImageRef, fetched: Fetched, index_digest: str | None) -> Manifest:
    layers = fetched.document.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"registry {ref.host} sent an invalid manifest for {ref}: \"layers\" is not a list")
    if len(layers) > MAX_LAYERS:
        raise RegistryError(f"image {ref} has {len(layers)} layers, more than {MAX_LAYERS}")
    return Manifest(fetched.digest, fetched.media_type, tuple(_descriptor(ref, d) for d in layers), index_digest)


def _descriptor(ref: ImageRef, entry: Any) -> Descriptor:
    if not isinstance(entry, dict):
        raise RegistryError(f"registry {ref.host} sent an invalid manifest for {ref}: a descriptor is not an object")
    media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not DIGEST.match(digest) \
            or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"registry {ref.host} sent an invalid manifest for {ref}: a descriptor lacks a "
                            f"media type, sha256 digest or size")
    return Descriptor(media_type, digest, size)


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({e.verify_message})"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    if isinstance(e, socket.gaierror):
        return "unknown host"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, http.client.IncompleteRead):
        return "the connection closed early"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
