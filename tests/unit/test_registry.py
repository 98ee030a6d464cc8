"""The registry client and the submit-time shell check, against a registry served from a thread.

The registry speaks the Docker Registry HTTP API v2 as the site's does (Docker Distribution behind
nginx): TLS from a CA made for the test, HTTP Basic auth, manifests by tag or digest, OCI and
Docker schema 2 media types, an index listing several platforms, gzip layers built here.
"""

import base64
import datetime
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arc_bridge.imagecheck import ShellCheck
from arc_bridge.registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageRef,
    Registry,
    RegistryError,
    load_auths,
    parse_ref,
)

from .layers import entry, layer

USER, PASSWORD = "arkd", "s3cret"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# --- layers and images -------------------------------------------------------------------------

DEBIAN = layer(entry("./", tarfile.DIRTYPE, 0o755), entry("./bin", tarfile.SYMTYPE, target="usr/bin"),
               entry("./usr", tarfile.DIRTYPE, 0o755), entry("./usr/bin", tarfile.DIRTYPE, 0o755),
               entry("./usr/bin/dash", mode=0o755), entry("./usr/bin/sh", tarfile.SYMTYPE, target="dash"))
NO_DASH = layer(entry("./usr/bin/.wh.dash"))
TO_CVMFS = layer(entry("./usr/bin/sh", tarfile.SYMTYPE, target="/cvmfs/sw/bin/bash"))


def retimed(blob):
    """The same gzip layer with another time in its gzip header: the same files, another digest."""
    return blob[:4] + bytes([blob[4] ^ 1]) + blob[5:]


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data, **extra):
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


# --- the registry --------------------------------------------------------------------------------

class FakeRegistry:
    """What the registry holds and what it was asked."""

    def __init__(self):
        self.manifests = {}  # digest -> (media type, body)
        self.tags = {}  # (repository, tag) -> digest
        self.blobs = {}  # digest -> bytes as served
        self.requests = []
        self.lock = threading.Lock()
        self.blob_delay = 0.0
        self.status = None  # answer every request with this status
        self.blob_location = None  # redirect blob requests here ("/storage/{digest}")

    def push(self, repository, tag, layers, *, docker=False, index=False):
        """An image of these layers under repository:tag; its top manifest's digest."""
        layer_type, manifest_type = (DOCKER_LAYER, DOCKER_MANIFEST) if docker else (OCI_LAYER, OCI_MANIFEST)
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        self.blobs[digest(config)] = config
        for blob in layers:
            self.blobs[digest(blob)] = blob
        manifest = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                               "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                               "layers": [descriptor(layer_type, b) for b in layers]}).encode()
        top = self.put_manifest(manifest_type, manifest)
        if index:
            other = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                                "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                                "layers": []}).encode()
            self.put_manifest(manifest_type, other)
            index_type = DOCKER_LIST if docker else OCI_INDEX
            body = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": [
                descriptor(manifest_type, other, platform={"os": "linux", "architecture": "arm64"}),
                descriptor(manifest_type, manifest, platform={"os": "linux", "architecture": "amd64"}),
                descriptor(manifest_type, other, platform={"os": "unknown", "architecture": "unknown"}),
            ]}).encode()
            top = self.put_manifest(index_type, body)
        self.tags[(repository, tag)] = top
        return top

    def put_manifest(self, media_type, body):
        self.manifests[digest(body)] = (media_type, body)
        return digest(body)

    def asked(self, kind):
        with self.lock:
            return [r for r in self.requests if f"/{kind}/" in r]


class Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry

    def do_GET(self):
        reg = self.server.registry
        with reg.lock:
            reg.requests.append(self.path)
        if reg.status:
            return self.answer(reg.status)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.answer(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})
        if self.path == "/v2/":
            return self.answer(200, b"{}")
        if m := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path):
            repository, reference = m.groups()
            found = reg.manifests.get(reference if reference.startswith("sha256:") else
                                      reg.tags.get((repository, reference)))
            if found is None:
                return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            media_type, body = found
            return self.answer(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest(body)})
        if m := re.fullmatch(r"/(?:v2/(?P<repository>.+)/blobs|storage)/(?P<digest>sha256:[0-9a-f]{64})", self.path):
            if m["repository"] and reg.blob_location:
                return self.answer(307, headers={"Location": reg.blob_location.format(host=reg.host, digest=m[2])})
            if m[2] not in reg.blobs:
                return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            time.sleep(reg.blob_delay)
            return self.answer(200, reg.blobs[m[2]], {"Content-Type": "application/octet-stream"})
        self.answer(404)

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA, and a certificate of 127.0.0.1's signed by it."""
    where = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ARK test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (where / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (where / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (where / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return where


@pytest.fixture
def reg(pki):
    """A registry on 127.0.0.1 over TLS; `reg.host` is its host:port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "cert.pem", pki / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.registry = FakeRegistry()
    server.registry.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.registry
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(reg, pki):
    return Registry({reg.host: (USER, PASSWORD)}, pki / "ca.pem", timeout=2)


# --- references and credentials ------------------------------------------------------------------

def test_an_image_reference_names_registry_repository_and_tag_or_digest():
    assert parse_ref("10.213.21.2:5000/vo-alpha/base:1") == ImageRef("10.213.21.2:5000", "vo-alpha/base", "1")
    d = "sha256:" + "a" * 64
    assert parse_ref(f"registry.example.org:5000/vo-alpha/noshell@{d}") == \
        ImageRef("registry.example.org:5000", "vo-alpha/noshell", None, d)
    assert parse_ref(f"r.example.org/vo/x:2@{d}").reference == d  # the digest wins
    assert parse_ref("r.example.org/vo/x").reference == "latest"  # as Kubernetes pulls it
    assert str(parse_ref("10.213.21.2:5000/vo-alpha/base:1")) == "10.213.21.2:5000/vo-alpha/base:1"


@pytest.mark.parametrize("text", [
    "", "base:1", "r:5000/Vo/x:1", "r:5000/vo/../x:1", "r:5000/vo/x:1 ; rm -rf /", "r:99999/vo/x:1",
    "r:5000/vo/x@sha256:abc", "r:5000//x:1", "https://r:5000/vo/x:1", "r:5000/vo/x:1\nsecond line", "r:5000/vo/x:",
])
def test_anything_else_is_refused_in_one_line_naming_it(text):
    with pytest.raises(RegistryError) as e:
        parse_ref(text)
    assert repr(text)[1:-1].split("\\n")[0] in str(e.value) and "\n" not in str(e.value)


def test_credentials_come_from_a_docker_config_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {
        "10.213.21.2:5000": {"auth": base64.b64encode(b"alice:pa:ss").decode()},
        "https://registry.example.org:5000/v1/": {"username": "bob", "password": "pw"},
    }}))
    assert load_auths(config) == {"10.213.21.2:5000": ("alice", "pa:ss"), "registry.example.org:5000": ("bob", "pw")}


def test_unreadable_credentials_are_named_without_their_secret(tmp_path):
    with pytest.raises(RegistryError, match="cannot read registry credentials .*missing.json"):
        load_auths(tmp_path / "missing.json")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"r:5000": {"auth": "bm90LWEtcGFpcg=="}}}))  # "not-a-pair"
    with pytest.raises(RegistryError, match=r"auths\.r:5000\.auth is not base64 of user:password") as e:
        load_auths(config)
    assert "not-a-pair" not in str(e.value)


# --- manifests and blobs -------------------------------------------------------------------------

@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_an_index_is_followed_to_the_linux_amd64_manifest(reg, client, docker):
    top = reg.push("vo-alpha/base", "1", [DEBIAN, NO_DASH], docker=docker, index=True)
    manifest = client.manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))
    assert manifest.index_digest == top
    assert manifest.media_type == (DOCKER_MANIFEST if docker else OCI_MANIFEST)
    assert [layer.digest for layer in manifest.layers] == [digest(DEBIAN), digest(NO_DASH)]
    assert reg.manifests[manifest.digest][1]  # the child's digest, as served
    assert reg.asked("manifests") == ["/v2/vo-alpha/base/manifests/1", f"/v2/vo-alpha/base/manifests/{manifest.digest}"]


def test_a_plain_manifest_is_one_request_and_its_digest_is_that_of_its_bytes(reg, client):
    top = reg.push("vo-alpha/base", "1", [DEBIAN])
    manifest = client.manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))
    assert (manifest.digest, manifest.index_digest) == (top, None)
    assert len(reg.asked("manifests")) == 1
    assert client.manifest(parse_ref(f"{reg.host}/vo-alpha/base@{top}")).digest == top


def test_a_manifest_that_does_not_match_the_digest_asked_for_is_refused(reg, client):
    top = reg.push("vo-alpha/base", "1", [DEBIAN])
    media_type, body = reg.manifests[top]
    reg.manifests[top] = (media_type, body.replace(b'"size"', b' "size"', 1))
    with pytest.raises(RegistryError, match="does not match its digest"):
        client.manifest(parse_ref(f"{reg.host}/vo-alpha/base@{top}"))


def test_an_index_without_linux_amd64_or_a_schema_1_manifest_is_named(reg, client):
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    reg.tags[("vo-alpha/arm", "1")] = reg.put_manifest(OCI_INDEX, body)
    with pytest.raises(RegistryError, match=f"image {reg.host}/vo-alpha/arm:1 has no manifest for linux/amd64"):
        client.manifest(parse_ref(f"{reg.host}/vo-alpha/arm:1"))
    old = json.dumps({"schemaVersion": 1, "fsLayers": []}).encode()
    reg.tags[("vo-alpha/old", "1")] = reg.put_manifest("application/vnd.docker.distribution.manifest.v1+json", old)
    with pytest.raises(RegistryError, match="schema 1"):
        client.manifest(parse_ref(f"{reg.host}/vo-alpha/old:1"))


def test_a_blob_is_streamed_and_checked_against_its_digest(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    ref = parse_ref(f"{reg.host}/vo-alpha/base:1")
    with client.open_blob(ref, Descriptor(OCI_LAYER, digest(DEBIAN), len(DEBIAN))) as blob:
        assert blob.read(10) == DEBIAN[:10]
        blob.drain()
        assert blob.verified


def test_a_tampered_blob_is_refused(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    reg.blobs[digest(DEBIAN)] = retimed(DEBIAN)
    ref = parse_ref(f"{reg.host}/vo-alpha/base:1")
    wrong = f"sent layer {digest(DEBIAN)} of image .* with the wrong content"
    with client.open_blob(ref, Descriptor(OCI_LAYER, digest(DEBIAN), len(DEBIAN))) as blob, \
            pytest.raises(RegistryError, match=wrong):
        blob.drain()
    reg.blobs[digest(DEBIAN)] = DEBIAN[:-1]
    with client.open_blob(ref, Descriptor(OCI_LAYER, digest(DEBIAN), len(DEBIAN))) as blob, \
            pytest.raises(RegistryError, match="short"):
        blob.drain()


def test_rejected_credentials_name_the_registry_and_the_user(reg, pki):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    wrong = Registry({reg.host: (USER, "guess")}, pki / "ca.pem")
    with pytest.raises(RegistryError) as e:
        wrong.manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))
    assert str(e.value) == f"registry {reg.host} rejected the credentials of user 'arkd' for image {reg.host}/vo-alpha/base:1"
    with pytest.raises(RegistryError, match=f"registry {reg.host} asks for credentials .* arkd has none for"):
        Registry({}, pki / "ca.pem").manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))


def test_a_missing_image_or_layer_is_named(reg, client):
    with pytest.raises(RegistryError) as e:
        client.manifest(parse_ref(f"{reg.host}/vo-alpha/missing:1"))
    assert str(e.value) == f"image {reg.host}/vo-alpha/missing:1 not found"
    with pytest.raises(RegistryError, match=f"layer {digest(b'x')} of image .* not found"):
        client.open_blob(parse_ref(f"{reg.host}/vo-alpha/missing:1"), Descriptor(OCI_LAYER, digest(b"x"), 1))


def test_an_unreachable_or_untrusted_registry_is_named(reg, pki):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(RegistryError, match=f"cannot reach registry {closed}: connection refused"):
        Registry({}, pki / "ca.pem").manifest(parse_ref(f"{closed}/vo-alpha/base:1"))
    with pytest.raises(RegistryError, match=f"cannot reach registry {reg.host}: its TLS certificate is not trusted"):
        Registry({reg.host: (USER, PASSWORD)}).manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))
    reg.status = 503
    with pytest.raises(RegistryError, match=f"registry {reg.host} answered HTTP 503"):
        Registry({}, pki / "ca.pem").manifest(parse_ref(f"{reg.host}/vo-alpha/base:1"))


def test_a_blob_redirected_elsewhere_on_the_registry_is_followed_but_never_to_plain_http(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    ref = parse_ref(f"{reg.host}/vo-alpha/base:1")
    reg.blob_location = "/storage/{digest}"
    with client.open_blob(ref, Descriptor(OCI_LAYER, digest(DEBIAN), len(DEBIAN))) as blob:
        blob.drain()
    assert reg.requests[-1] == f"/storage/{digest(DEBIAN)}"
    reg.blob_location = "http://{host}/storage/{digest}"
    with pytest.raises(RegistryError, match="redirected layer .* to http://, not https"):
        client.open_blob(ref, Descriptor(OCI_LAYER, digest(DEBIAN), len(DEBIAN)))


# --- the shell check -----------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_an_image_with_dash_has_its_shell_and_one_whose_dash_is_whited_out_has_none(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN], index=True)
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    check = ShellCheck(client)
    good = check.check(f"{reg.host}/vo-alpha/base:1")
    assert (good.present, good.detail) == (True, "/bin/sh is /usr/bin/dash")
    bad = check.check(f"{reg.host}/vo-alpha/noshell:1")
    assert bad.present is False
    assert bad.message == (f"image {reg.host}/vo-alpha/noshell:1 has no /bin/sh, which runs ARC's job script: the VO's "
                           f"image needs a POSIX shell (/bin/sh leads to /usr/bin/dash: no such file or directory)")


def test_answers_are_cached_by_digest_and_a_tag_for_a_minute(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN, NO_DASH], index=True)
    clock = Clock()
    check = ShellCheck(client, clock=clock)
    image = f"{reg.host}/vo-alpha/base:1"
    assert check.check(image).present is False
    assert (len(reg.asked("manifests")), len(reg.asked("blobs"))) == (2, 2)
    clock.now += 59
    assert check.check(image).present is False
    assert len(reg.requests) == 4  # nothing asked within the tag's minute
    clock.now += 2
    assert check.check(image).present is False
    assert reg.requests[4:] == ["/v2/vo-alpha/base/manifests/1"]  # one small request: the digest is known
    # The same image under another tag, or by digest: the same answer, from the cache.
    reg.tags[("vo-alpha/base", "2")] = reg.tags[("vo-alpha/base", "1")]
    assert check.check(f"{reg.host}/vo-alpha/base:2").present is False
    assert check.check(f"{reg.host}/vo-alpha/base@{reg.tags[('vo-alpha/base', '1')]}").present is False
    assert len(reg.asked("blobs")) == 2 and len(reg.requests) == 6


def test_a_retagged_image_is_seen_after_the_tags_minute(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN, NO_DASH])
    clock = Clock()
    check = ShellCheck(client, clock=clock)
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is False
    reg.push("vo-alpha/base", "1", [DEBIAN])
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is False
    clock.now += 61
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is True


def test_two_submits_of_an_uncached_image_read_it_once(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    reg.blob_delay = 0.1
    check = ShellCheck(client)
    start, answers = threading.Barrier(3), []

    def submit():
        start.wait()
        answers.append(check.check(f"{reg.host}/vo-alpha/base:1").present)

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [True, True, True]
    assert reg.asked("blobs") == [f"/v2/vo-alpha/base/blobs/{digest(DEBIAN)}"]


def test_images_on_the_same_base_read_its_layers_once(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    check = ShellCheck(client)
    assert check.check(f"{reg.host}/vo-alpha/noshell:1").present is False
    # The base's tree, kept as it was before NO_DASH changed a copy of it.
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is True
    assert sorted(reg.asked("blobs")) == sorted(f"/v2/vo-alpha/noshell/blobs/{digest(b)}" for b in (DEBIAN, NO_DASH))
    # A third image on the same base reads only its own layer.
    reg.push("vo-alpha/tools", "2", [DEBIAN, layer(entry("./usr/bin/tool", mode=0o755))])
    assert check.check(f"{reg.host}/vo-alpha/tools:2").present is True
    assert len(reg.asked("blobs")) == 3
    # Other mounts over the same image: answered from the kept tree, nothing read again.
    assert check.check(f"{reg.host}/vo-alpha/noshell:1", ["/srv"]).present is False
    assert len(reg.asked("blobs")) == 3


def test_images_warmed_at_start_are_answered_at_submit_without_a_request(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN], index=True)
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    check = ShellCheck(client)
    base, noshell = f"{reg.host}/vo-alpha/base:1", f"{reg.host}/vo-alpha/noshell:1"
    check.warm([(base, ["/sessions"]), (noshell, ["/sessions"]), (noshell, ["/sessions", "/tmp"])]).join(timeout=30)
    asked = len(reg.requests)
    assert len(reg.asked("blobs")) == 2  # DEBIAN once, NO_DASH once
    assert check.check(base, ["/sessions"]).present is True
    assert check.check(noshell, ["/tmp", "/sessions"]).present is False
    assert len(reg.requests) == asked


def test_an_image_warmed_before_it_was_pushed_is_read_at_its_first_submit(reg, client):
    check = ShellCheck(client)
    image = f"{reg.host}/vo-alpha/noshell:1"
    check.warm([(image, [])]).join(timeout=30)
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    assert check.check(image).present is False


def test_layer_trees_are_kept_only_up_to_their_node_budget(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    check = ShellCheck(client, tree_nodes=3)  # fewer than DEBIAN's tree has
    check.check(f"{reg.host}/vo-alpha/base:1")
    check.check(f"{reg.host}/vo-alpha/noshell:1")
    assert len(reg.asked("blobs")) == 3  # the base was read twice


def test_a_registry_that_cannot_answer_gives_unknown_and_is_asked_once_a_minute(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN])
    reg.status = 503
    clock = Clock()
    check = ShellCheck(client, clock=clock)
    answer = check.check(f"{reg.host}/vo-alpha/base:1")
    assert answer.present is None and "answered HTTP 503" in answer.detail
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is None
    assert len(reg.requests) == 1
    reg.status = None
    clock.now += 61
    assert check.check(f"{reg.host}/vo-alpha/base:1").present is True


def test_a_tampered_layer_gives_unknown_not_no_shell(reg, client):
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    reg.blobs[digest(NO_DASH)] = retimed(NO_DASH)  # still whites out dash, but not the layer the manifest names
    answer = ShellCheck(client).check(f"{reg.host}/vo-alpha/noshell:1")
    assert answer.present is None and "wrong content" in answer.detail


def test_a_scan_over_its_time_budget_gives_unknown(reg, client):
    reg.push("vo-alpha/base", "1", [DEBIAN, NO_DASH])
    reg.blob_delay = 0.2
    answer = ShellCheck(client, scan_budget=0.1).check(f"{reg.host}/vo-alpha/base:1")
    assert answer.present is None and reg.host in answer.detail


def test_a_submit_waits_only_so_long_and_a_later_one_has_the_answer(reg, client):
    reg.push("vo-alpha/noshell", "1", [DEBIAN, NO_DASH])
    reg.blob_delay = 0.1
    check = ShellCheck(client, wait=0.01)
    early = check.check(f"{reg.host}/vo-alpha/noshell:1")
    assert early.present is None and "takes more than 0.01 s" in early.detail
    deadline = time.monotonic() + 2
    while (late := check.check(f"{reg.host}/vo-alpha/noshell:1")).present is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert late.present is False
    assert len(reg.asked("blobs")) == 2


def test_a_shell_behind_a_mount_over_the_image_is_unknown(reg, client):
    reg.push("vo-alpha/cvmfs", "1", [DEBIAN, TO_CVMFS])
    check = ShellCheck(client)
    answer = check.check(f"{reg.host}/vo-alpha/cvmfs:1", mounts=["/cvmfs"])
    assert answer.present is None and answer.detail == "/bin/sh leads to /cvmfs, mounted over the image"
    assert check.check(f"{reg.host}/vo-alpha/cvmfs:1").present is False


def test_what_the_check_cannot_read_is_unknown(reg, client):
    check = ShellCheck(client)
    assert check.check("not an image").present is None
    config = json.dumps({}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                           "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+zstd", b"zstd")]}).encode()
    reg.tags[("vo-alpha/zstd", "1")] = reg.put_manifest(OCI_MANIFEST, manifest)
    answer = check.check(f"{reg.host}/vo-alpha/zstd:1")
    assert answer.present is None and "zstd" in answer.detail
    reg.push("vo-alpha/junk", "1", [b"not a layer"])
    assert check.check(f"{reg.host}/vo-alpha/junk:1").present is None
