"""What a grid user with a mapped account, or anyone who can make Kubernetes objects, may try
against arkd on the site Salt installs, and what arkd does about it.
"""

import json
import subprocess
import time

import pytest

from ark.check import LOCAL_PROBES

pytestmark = pytest.mark.site


def test_editing_her_own_control_files_does_not_reach_another_users_session(site):
    alice = site.new_job("ark-alice", "echo alice-private-output\n")
    assert site.submit(alice).returncode == 0
    assert site.wait_done(alice) == "0"
    alice_diag = site.diag(alice)

    # Bob owns his job's .local and status file (ARC hands them to him): he points his job at
    # Alice's session and tells A-REX's scan it is in the batch system.
    bob = site.new_job("ark-bob", "true\n")
    forged_local = f"localid=ark-forged\nsessiondir={site.inside(alice.session)}\n"
    for path, text in ((site.controldir.job_file(bob.grid_id, "local"), forged_local),
                       (site.controldir.status_file(bob.grid_id), "INLRMS")):
        wrote = site.as_user("ark-bob", "sh", "-c", 'printf "%s" "$1" > "$2"', "sh", text, site.inside(path))
        assert wrote.returncode == 0, wrote.stderr

    assert site.client("root", "scan", site.config["controldir"], "--period", "0").returncode == 0
    assert site.wait_done(bob, timeout=10).startswith("-1 job is not known to Kubernetes")
    errors = site.controldir.job_file(bob.grid_id, "errors")
    assert not errors.exists() or "alice-private-output" not in errors.read_text()
    assert site.diag(alice) == alice_diag


@pytest.mark.parametrize("namespace, vo", [("default", "alpha"), ("ark-alpha", "no-such-vo")])
def test_a_look_alike_job_outside_its_vos_namespace_is_not_believed(site, namespace, vo):
    job = site.new_job("ark-alice", "sleep 8; exit 5\n")
    assert site.submit(job).returncode == 0
    real = json.loads(site.kubectl("get", "job", "-n", "ark-alpha", site.local_id(job), "-o", "json").stdout)
    fake_name = f"fake-{job.grid_id[:12]}"
    fake = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": fake_name, "namespace": namespace,
                     "labels": {**real["metadata"]["labels"], "ark.nordugrid.org/vo": vo},
                     "annotations": real["metadata"]["annotations"]},
        # Fails within a second, long before the real job ends: believed, it would be recorded.
        "spec": {"activeDeadlineSeconds": 1, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "x", "image": "ark.invalid/none:1", "command": ["true"]}]}}},
    }
    try:
        created = site.kubectl("create", "-f", "-", input=json.dumps(fake))
        assert created.returncode == 0, created.stderr
        assert site.wait_done(job, timeout=60) == "5 job exited with code 5"
        journal = site.ce.run("journalctl", "--no-pager", "-u", "arkd", "--since", "-2min").stdout
        assert f"ignoring jobs {namespace}/{fake_name}" in journal
    finally:
        site.kubectl("delete", "job", "-n", namespace, fake_name, "--ignore-not-found", "--wait=false")


# Run inside the CE host as the attacker: keep up to N connections to arkd open and silent (some
# with most of a maximal request sent), reopening those arkd closes, until stdin closes or a
# minute has passed; then print how many replies said busy and how many connections were open.
HOLD_CONNECTIONS = r"""
import select, socket, sys, time
path, want = sys.argv[1], int(sys.argv[2])
held, busy, opened, told = [], 0, 0, False
stop = time.monotonic() + 60
while time.monotonic() < stop and not select.select([sys.stdin], [], [], 0.5)[0]:
    for sock in list(held):
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            data = sock.recv(4096)
            busy += b'"busy": true' in data
            held.remove(sock)
            sock.close()
    while len(held) < want:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        opened += 1
        if opened % 50 == 0:
            sock.setblocking(False)
            try:
                sock.send(b'{"op": "submit", "script": "' + b"x" * 900000)
            except OSError:
                pass
        held.append(sock)
    if not told:
        print("holding", flush=True)
        told = True
print(f"busy={busy} opened={opened}", flush=True)
"""


def test_one_user_holding_connections_cannot_stop_another_from_submitting(site):
    attacker = subprocess.Popen(
        site.ce.command(["setpriv", f"--reuid={site.uid('ark-bob')}", f"--regid={site.uid('ark-bob')}",
                         "--clear-groups", "/usr/bin/python3", "-c", HOLD_CONNECTIONS, site.socket, "1000"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert attacker.stdout.readline().strip() == "holding", attacker.stderr.read()
        job = site.new_job("ark-alice", "exit 0\n")
        submitted = site.submit(job)
        assert submitted.returncode == 0, submitted.stdout
        assert site.wait_done(job, timeout=60) == "0"
        assert site.client("root", "info").returncode == 0
    finally:
        out, err = attacker.communicate(input="", timeout=30)
    busy, opened = (int(part.split("=")[1]) for part in out.split()[-2:])
    assert opened >= 1000 and busy > 900, err


@pytest.mark.parametrize("role", sorted(LOCAL_PROBES))
def test_a_grid_account_reaches_neither_etcd_nor_the_registry_backend(site, role):
    # The all-in-one CE host has every role: a mapped grid account is a local account there.
    what, probe = LOCAL_PROBES[role]
    answer = site.as_user("ark-alice", "/usr/bin/python3", "-c", probe).stdout.strip()
    assert answer.startswith("closed: "), f"{what}: {answer}"


# Pod specs that whoever holds arkd's credentials (create Jobs in a VO namespace) might try.
FORBIDDEN_PODS = {
    "root": {"securityContext": {"runAsUser": 0}},
    "privileged": {"securityContext": {"runAsUser": 20011},
                   "containers": [{"securityContext": {"privileged": True}}]},
    "host-network": {"securityContext": {"runAsUser": 20011}, "hostNetwork": True},
    "host-etc": {"securityContext": {"runAsUser": 20011},
                 "volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}],
                 "containers": [{"volumeMounts": [{"name": "etc", "mountPath": "/host-etc"}]}]},
}


def test_arkds_credentials_cannot_start_a_pod_outside_the_pod_security_policy(site):
    """Each Job is refused outright (the API server allows no privileged containers at all) or
    created without any pod ever being admitted under the pod security policy."""
    arkd = ("kubectl", "--kubeconfig=/etc/ark/arkd.kubeconfig", "-n", "ark-alpha")
    refused: dict[str, str] = {}
    created: list[str] = []
    try:
        for what, spec in FORBIDDEN_PODS.items():
            container = {"name": "x", "image": f"{site.registry}/vo-alpha/base:1", "command": ["true"],
                         **(spec.get("containers") or [{}])[0]}
            pod_spec = {**spec, "restartPolicy": "Never", "containers": [container]}
            name = f"forbidden-{what}"
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                   "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}
            result = site.ce.run(*arkd, "create", "-f", "-", input=json.dumps(job))
            if result.returncode == 0:
                created.append(name)
            else:
                assert "Forbidden" in result.stderr, result.stderr
                refused[name] = result.stderr.strip()
        deadline = time.monotonic() + 60
        while len(refused) < len(FORBIDDEN_PODS) and time.monotonic() < deadline:
            events = json.loads(site.kubectl("get", "events", "-n", "ark-alpha", "-o", "json").stdout)["items"]
            for event in events:
                name = event["involvedObject"]["name"]
                if name in created and "PodSecurityPolicy: unable to admit pod" in event.get("message", ""):
                    refused[name] = event["message"]
            time.sleep(1)
        assert sorted(refused) == sorted(f"forbidden-{what}" for what in FORBIDDEN_PODS)
        pods = site.kubectl("get", "pods", "-n", "ark-alpha", "-o", "name").stdout
        assert not any(name in pods for name in created)
    finally:
        for name in created:
            site.kubectl("delete", "job", "-n", "ark-alpha", name, "--wait=false")
