"""ARK sites on real systemd hosts: highstate of salt/ on every host, then checks by role.

localsite/saltsite.py boots the hosts on a LAN with no route out (as a site with no internet),
serves them the site's files repository and an apt proxy, and applies highstate to each host
twice. Two sites, each checked against the same expectations per role:
- all-in-one: one host with every role, which makes its own CA;
- split: every role on hosts of its own (control plane, registry, CE, two workers), sharing the
  site CA from pillar, and the CE and the workers sharing the session directory.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

import pytest

from localsite.host import Host, changed_states
from localsite.saltsite import SITES, SaltSite, example_pillar, grid_client, push_site_images, running_salt_site, site_ca

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: boots systemd-nspawn test hosts"),
]

SERVICES = {
    "control-plane": ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "worker": ("containerd", "kubelet"),
    "registry": ("docker-registry", "nginx"),
    "ce": ("arkd", "arc-arex", "arc-arex-ws"),
}
# Root's alone (0600). Every host signs its own certificates, so every host has the CA key.
SECRET_FILES = {
    "control-plane": ("/etc/ark/pki/sa.key", "/etc/ark/pki/apiserver.key", "/etc/ark/pki/apiserver-kubelet-client.key",
                      "/etc/ark/pki/controller-manager.key", "/etc/ark/pki/scheduler.key", "/etc/ark/pki/admin.key",
                      "/etc/ark/admin.kubeconfig"),
    "worker": ("/etc/ark/pki/kubelet.key", "/etc/ark/pki/kubelet-serving.key", "/etc/containerd/config.toml"),
    "registry": ("/etc/ark/pki/registry.key",),
    "ce": ("/etc/ark/pki/admin.key", "/etc/ark/pki/arkd.key", "/etc/ark/pki/arex.key", "/etc/ark/arex/hostkey.pem",
           "/etc/ark/admin.kubeconfig", "/etc/ark/arkd.kubeconfig", "/etc/ark/kubernetes/vo-objects.yaml"),
}
# Every TCP listener, by process (ss truncates names to 15 characters), with {ip} for the host's
# address; containerd's CRI streaming server takes a random loopback port. Nothing listens on UDP.
LISTENERS = {
    "control-plane": {("etcd", "127.0.0.1:2379"), ("etcd", "127.0.0.1:2380"), ("kube-apiserver", "{ip}:6443"),
                      ("kube-controller", "127.0.0.1:10257"), ("kube-scheduler", "127.0.0.1:10259")},
    "worker": {("kubelet", "{ip}:10250"), ("kubelet", "127.0.0.1:10248"), ("containerd", "127.0.0.1:*")},
    "registry": {("nginx", "{ip}:5000"), ("docker-registry", "127.0.0.1:5001")},
    "ce": {("arched", "{ip}:8443")},  # A-REX's REST interface, on pillar ark:arex:listen only
}


def log(message: str) -> None:
    print(message, file=sys.stderr)


@pytest.fixture(scope="module", params=list(SITES))
def site(request, tmp_path_factory):
    """A site after two highstates on each of its hosts."""
    plan = SITES[request.param]
    with running_salt_site(plan, tmp_path_factory.mktemp(plan.name), progress=log) as s:
        yield s


def hosts(site: SaltSite) -> list[tuple[str, tuple[str, ...], Host]]:
    return [(plan.name, plan.roles, site.hosts[plan.name]) for plan in site.plan.hosts]


def failed_states(result) -> list[str]:
    if not isinstance(result, dict):
        return [str(result)]
    return [f"{key}: {state.get('comment')}" for key, state in result.items() if state.get("result") is not True]


def test_first_highstate_succeeds(site):
    for name, (returncode, result) in site.first.items():
        assert failed_states(result) == [], name
        assert returncode == 0, name


def test_second_highstate_changes_nothing(site):
    for name, (returncode, result) in site.second.items():
        assert failed_states(result) == [], name
        assert returncode == 0, name
        assert changed_states(result) == [], name


def test_services_of_each_role_enabled_and_running(site):
    for name, roles, host in hosts(site):
        infra = host.testinfra()
        for service in (s for role in roles for s in SERVICES[role]):
            journal = infra.run(f"journalctl --no-pager -n 40 -u {service}").stdout
            assert infra.service(service).is_enabled, f"{name}: {service}:\n{journal}"
            assert infra.service(service).is_running, f"{name}: {service}:\n{journal}"


def test_workers_ready(site):
    admin = site.with_role("control-plane")
    kubectl = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig"]
    for name, roles, _ in hosts(site):
        if "worker" not in roles:
            continue
        deadline = time.monotonic() + 60
        while True:
            result = admin.run(*kubectl, "get", "node", name, "-o", "json")
            conditions = {}
            if result.returncode == 0:
                conditions = {c["type"]: c["status"] for c in json.loads(result.stdout)["status"]["conditions"]}
            if conditions.get("Ready") == "True" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert conditions.get("Ready") == "True", (name, result.stderr, conditions)


def test_keys_and_secrets_are_private(site):
    for name, roles, host in hosts(site):
        infra = host.testinfra()
        for path in ("/etc/ark/pki/ca.key", *(p for role in roles for p in SECRET_FILES[role])):
            secret = infra.file(path)
            assert secret.exists, f"{name}: {path}"
            assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), f"{name}: {path}"
        # nginx's workers (www-data) check the registry accounts.
        if "registry" in roles:
            accounts = infra.file("/etc/ark/registry/htpasswd")
            assert (accounts.user, accounts.group, accounts.mode) == ("root", "www-data", 0o640), name


def test_hosts_share_one_ca(site):
    """Every host has the same CA certificate, so each trusts what the others' certificates say
    (the grid job and the Ready workers prove the trust in use)."""
    ca = {name: (host.root / "etc/ark/pki/ca.crt").read_text() for name, _, host in hosts(site)}
    assert len(set(ca.values())) == 1, sorted(ca)


def _registry(site: SaltSite, path: str, account: dict[str, str] | None = None, method: str = "GET") -> int:
    """Status of a request to the registry from outside the site, over TLS verified with the site CA."""
    context = ssl.create_default_context(cafile=str(site_ca(site)))
    registry = site.plan.address(site.plan.with_role("registry").name)
    request = urllib.request.Request(f"https://{registry}:5000{path}", method=method)
    if account:
        credentials = f"{account['name']}:{account['password']}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_registry_refuses_anonymous_pulls(site):
    pull = example_pillar()["registry"]["pull_user"]
    assert _registry(site, "/v2/") == 401
    assert _registry(site, "/v2/vo-alpha/base/manifests/1") == 401
    assert _registry(site, "/v2/", {"name": pull["name"], "password": "wrong-password"}) == 401
    assert _registry(site, "/v2/", pull) == 200


def test_registry_accounts_push_only_where_they_may(site):
    """docker-registry lets any account push anywhere; the proxy in front lets a VO's manager
    push under vo-<VO>/ only, the site admin anywhere, and the pull account nowhere."""
    accounts = example_pillar()["registry"]
    alpha, admin, pull = accounts["push_users"]["alpha"], accounts["admin_user"], accounts["pull_user"]

    def upload(repository: str, account: dict[str, str]) -> int:
        return _registry(site, f"/v2/{repository}/blobs/uploads/", account, method="POST")

    assert upload("vo-alpha/base", alpha) == 202
    assert upload("vo-alpha/base", {"name": alpha["name"], "password": "wrong-password"}) == 401
    assert upload("vo-beta/base", alpha) == 403
    assert upload("vo-alphax/base", alpha) == 403
    assert upload("ark/pause", alpha) == 403
    assert upload("vo-alpha/base", pull) == 403
    assert upload("vo-alpha/base", {"name": "intruder", "password": "x"}) == 403
    assert upload("ark/pause", admin) == 202
    assert _registry(site, "/v2/vo-beta/base/manifests/1", alpha, method="DELETE") == 403
    # Paths that could name one repository to the proxy and another to the registry.
    assert upload("vo-alpha/../vo-beta/base", alpha) == 400
    assert upload("vo-alpha/%2e%2e/vo-beta/base", alpha) == 400
    assert upload("vo-alpha//base", alpha) == 400


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


def test_only_the_roles_ports_listen(site):
    for name, roles, host in hosts(site):
        infra = host.testinfra()
        expected = {(process, local.format(ip=host.address)) for role in roles for process, local in LISTENERS[role]}
        assert _listeners(infra, "t") == expected, name
        assert _listeners(infra, "u") == set(), name


@pytest.fixture(scope="module")
def site_images(site, tmp_path_factory):
    """The site, with the pod sandbox image and the VO's base image pushed by the VO manager."""
    push_site_images(site, tmp_path_factory.mktemp("images"), progress=log)
    return site


def test_job_runs_as_a_pod(site_images):
    """A Job as arkd makes it (arkd's own credentials, the VO's namespace, image and uid) runs to
    Complete on a worker with images pulled from the site registry, and its log comes back
    through the API."""
    ce = site_images.with_role("ce")
    registry = site_images.plan.address(site_images.plan.with_role("registry").name)
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
                    "name": "payload", "image": f"{registry}:5000/vo-alpha/base:1",
                    "command": ["/bin/sh", "-c", "echo hello from $(id -u) on the site"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                }],
            }},
        },
    }
    created = ce.run("kubectl", "--kubeconfig=/etc/ark/arkd.kubeconfig", "create", "-f", "-", input=json.dumps(job))
    assert created.returncode == 0, created.stderr
    admin = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig", "-n", "ark-alpha"]
    started = time.monotonic()
    waited = ce.run(*admin, "wait", "--for=condition=complete", "--timeout=120s", "job/site-proof", timeout=150)
    elapsed = time.monotonic() - started
    pods = ce.run(*admin, "get", "pods", "-o", "wide").stdout
    events = ce.run(*admin, "get", "events").stdout
    assert waited.returncode == 0, f"{waited.stderr}\n{pods}\n{events}"
    log(f"job create -> Complete: {elapsed:.1f} s")
    logs = ce.run(*admin, "logs", "job/site-proof")
    assert logs.stdout.strip() == "hello from 20001 on the site", logs.stderr


def test_each_worker_gives_pods_addresses_from_its_own_range(site_images):
    """Pods get addresses from their node's pod_cidr (pillar ark:kubernetes:pod_cidr per worker),
    so no two workers hand out the same address."""
    admin = site_images.with_role("control-plane")
    kubectl = ["kubectl", "--kubeconfig=/etc/ark/admin.kubeconfig", "-n", "ark-alpha"]
    registry = site_images.plan.address(site_images.plan.with_role("registry").name)
    default_range = example_pillar()["kubernetes"]["pod_cidr"]
    workers = [plan for plan in site_images.plan.hosts if "worker" in plan.roles]
    for plan in workers:
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"range-{plan.name}", "namespace": "ark-alpha"},
            "spec": {
                "nodeName": plan.name, "restartPolicy": "Never", "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": 20001, "runAsNonRoot": True},
                "containers": [{"name": "idle", "image": f"{registry}:5000/vo-alpha/base:1",
                                "command": ["sleep", "60"]}],
            },
        }
        created = admin.run(*kubectl, "create", "-f", "-", input=json.dumps(pod))
        assert created.returncode == 0, created.stderr
    for plan in workers:
        name = f"range-{plan.name}"
        ready = admin.run(*kubectl, "wait", "--for=condition=Ready", "--timeout=90s", f"pod/{name}", timeout=120)
        assert ready.returncode == 0, ready.stderr + admin.run(*kubectl, "describe", "pod", name).stdout
        ip = admin.run(*kubectl, "get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(plan.pod_cidr or default_range), (plan.name, ip)
        admin.run(*kubectl, "delete", "pod", name, "--wait=false")


def test_grid_job_from_the_arc_client(site_images, tmp_path):
    """The issue's end-to-end proof: arcsub from outside the site, over TLS to A-REX (host
    certificate from the site PKI), mapped by the VO's authgroup to its account, run by arkd as a
    pod on the worker, and its output back with arcget."""
    tmp_path.chmod(0o755)
    client = grid_client(site_images, tmp_path / "client")
    started = time.monotonic()
    job = client.submit('&(executable="/bin/sh")(arguments="-c" "echo hello grid; id -u")'
                        '(stdout="stdout.txt")(jobname="site")', cwd=tmp_path)
    assert client.wait(job, timeout=240) == "Finished"
    log(f"grid job arcsub -> Finished: {time.monotonic() - started:.1f} s")
    results = client.get(job, tmp_path / "results")
    assert (results / "stdout.txt").read_text() == "hello grid\n20001\n"
