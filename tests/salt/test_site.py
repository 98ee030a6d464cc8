"""The all-in-one site on a real systemd host: highstate of salt/ with every role, then checks.

localsite/saltsite.py boots the host (no route out, as a site with no internet), serves it the
site's files repository and an apt proxy, and applies highstate twice with the example pillar.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from localsite.host import changed_states
from localsite.saltsite import (HOST_NAME, NODE_IP, example_pillar, grid_client, push_site_images,
                                running_salt_site)

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: boots a systemd-nspawn test host"),
]

SERVICES = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
    "docker-registry", "arkd", "arc-arex", "arc-arex-ws",
)
SECRET_FILES = (
    "/etc/ark/pki/ca.key", "/etc/ark/pki/sa.key", "/etc/ark/pki/apiserver.key",
    "/etc/ark/pki/apiserver-kubelet-client.key", "/etc/ark/pki/controller-manager.key",
    "/etc/ark/pki/scheduler.key", "/etc/ark/pki/admin.key", "/etc/ark/pki/kubelet.key",
    "/etc/ark/pki/kubelet-serving.key", "/etc/ark/pki/arkd.key", "/etc/ark/pki/arex.key",
    "/etc/ark/pki/registry.key", "/etc/ark/arex/hostkey.pem",
    "/etc/ark/admin.kubeconfig", "/etc/ark/arkd.kubeconfig",
    "/etc/containerd/config.toml", "/etc/ark/kubernetes/vo-objects.yaml",
)


def failed_states(result) -> list[str]:
    if not isinstance(result, dict):
        return [str(result)]
    return [f"{key}: {state.get('comment')}" for key, state in result.items() if state.get("result") is not True]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The host after two highstates."""
    with running_salt_site(tmp_path_factory.mktemp("site"), progress=lambda m: print(m, file=sys.stderr)) as s:
        yield s


def test_first_highstate_succeeds(site):
    returncode, result = site.first
    assert failed_states(result) == []
    assert returncode == 0


def test_second_highstate_changes_nothing(site):
    returncode, result = site.second
    assert failed_states(result) == []
    assert returncode == 0
    assert changed_states(result) == []


def test_services_enabled_and_running(site):
    infra = site.host.testinfra()
    for name in SERVICES:
        service = infra.service(name)
        journal = infra.run(f"journalctl --no-pager -n 40 -u {name}").stdout
        assert service.is_enabled, f"{name}:\n{journal}"
        assert service.is_running, f"{name}:\n{journal}"


def test_node_ready(site):
    host = site.host
    kubectl = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig"]
    deadline = time.monotonic() + 60
    while True:
        result = host.run(*kubectl, "get", "node", HOST_NAME, "-o", "json")
        conditions = {}
        if result.returncode == 0:
            conditions = {c["type"]: c["status"] for c in json.loads(result.stdout)["status"]["conditions"]}
        if conditions.get("Ready") == "True" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert conditions.get("Ready") == "True", (result.stderr, conditions)


def test_keys_and_secrets_are_private(site):
    infra = site.host.testinfra()
    for path in SECRET_FILES:
        secret = infra.file(path)
        assert secret.exists, path
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), path
    # The registry runs as docker-registry and reads its own copies, which no one else may read.
    for path in ("/etc/docker/registry/tls.key", "/etc/docker/registry/htpasswd"):
        secret = infra.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "docker-registry", 0o640), path


def _registry_get(host, path: str, credentials: tuple[str, str] | None = None) -> int:
    """Status of a GET to the registry from outside the host, over TLS verified with the site CA."""
    import base64
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(host.root / "etc/ark/pki/ca.crt"))
    request = urllib.request.Request(f"https://{NODE_IP}:5000{path}")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_registry_refuses_anonymous_pulls(site):
    host = site.host
    pillar = example_pillar()["registry"]
    assert _registry_get(host, "/v2/") == 401
    assert _registry_get(host, "/v2/vo-alpha/base/manifests/1") == 401
    assert _registry_get(host, "/v2/", ("ark-pull", "wrong-password")) == 401
    pull = pillar["pull_user"]
    assert _registry_get(host, "/v2/", (pull["name"], pull["password"])) == 200


# Every TCP listener of the site, by process (ss truncates names to 15 characters); containerd's
# CRI streaming server takes a random loopback port. Nothing listens on UDP.
EXPECTED_LISTENERS = {
    ("etcd", "127.0.0.1:2379"),
    ("etcd", "127.0.0.1:2380"),
    ("kube-apiserver", f"{NODE_IP}:6443"),
    ("kube-controller", "127.0.0.1:10257"),
    ("kube-scheduler", "127.0.0.1:10259"),
    ("kubelet", f"{NODE_IP}:10250"),
    ("kubelet", "127.0.0.1:10248"),
    ("containerd", "127.0.0.1:*"),
    ("docker-registry", f"{NODE_IP}:5000"),
    ("arched", f"{NODE_IP}:8443"),  # A-REX's REST interface, on pillar ark:arex:listen only
}


def _listeners(infra, protocol: str) -> set[tuple[str, str]]:
    found = set()
    for line in infra.check_output(f"ss -l{protocol}npH").splitlines():
        fields = line.split()
        local, users = fields[3], fields[-1]
        process = users.split('"')[1] if '"' in users else users
        if process == "containerd" and local.startswith("127.0.0.1:"):
            local = "127.0.0.1:*"
        found.add((process, local))
    return found


def test_only_expected_ports_listen(site):
    infra = site.host.testinfra()
    assert _listeners(infra, "t") == EXPECTED_LISTENERS
    assert _listeners(infra, "u") == set()


@pytest.fixture(scope="module")
def site_images(site, tmp_path_factory):
    """The host, with the pod sandbox image and the VO's base image pushed by the VO manager."""
    push_site_images(site.host, tmp_path_factory.mktemp("images"), progress=lambda m: print(m, file=sys.stderr))
    return site.host


def test_job_runs_as_a_pod(site_images):
    """A Job as arkd makes it (arkd's own credentials, the VO's namespace, image and uid) runs to
    Complete with images pulled from the site registry, and its log comes back through the API."""
    host = site_images
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "site-proof", "namespace": "ark-alpha"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": 20001, "runAsGroup": 20001, "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "payload", "image": f"{NODE_IP}:5000/vo-alpha/base:1",
                    "command": ["/bin/sh", "-c", "echo hello from $(id -u) on the site"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                }],
            }},
        },
    }
    created = host.run("kubectl", "--kubeconfig=/etc/ark/arkd.kubeconfig", "create", "-f", "-", input=json.dumps(job))
    assert created.returncode == 0, created.stderr
    admin = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig", "-n", "ark-alpha"]
    started = time.monotonic()
    waited = host.run(*admin, "wait", "--for=condition=complete", "--timeout=120s", "job/site-proof", timeout=150)
    elapsed = time.monotonic() - started
    pods = host.run(*admin, "get", "pods", "-o", "wide").stdout
    events = host.run(*admin, "get", "events").stdout
    assert waited.returncode == 0, f"{waited.stderr}\n{pods}\n{events}"
    print(f"job create -> Complete: {elapsed:.1f} s", file=sys.stderr)
    logs = host.run(*admin, "logs", "job/site-proof")
    assert logs.stdout.strip() == "hello from 20001 on the site", logs.stderr


def test_grid_job_from_the_arc_client(site_images, tmp_path):
    """The issue's end-to-end proof: arcsub from outside the host, over TLS to A-REX (host
    certificate from the site PKI), mapped by the VO's authgroup to its account, run by arkd as a
    pod, and its output back with arcget."""
    tmp_path.chmod(0o755)
    client = grid_client(site_images, tmp_path / "client")
    started = time.monotonic()
    job = client.submit('&(executable="/bin/sh")(arguments="-c" "echo hello grid; id -u")'
                        '(stdout="stdout.txt")(jobname="site")', cwd=tmp_path)
    assert client.wait(job, timeout=240) == "Finished"
    print(f"grid job arcsub -> Finished: {time.monotonic() - started:.1f} s", file=sys.stderr)
    results = client.get(job, tmp_path / "results")
    assert (results / "stdout.txt").read_text() == "hello grid\n20001\n"
