"""`ark check`'s pure parts: listeners from `ss`, compared with each role's; file owners and
modes; one CA; the pillar as the checks read it; the Job it runs; the SSH settings; the report.
No host is contacted: a fake testinfra host answers the few commands a check runs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ark import check, cli
from ark.check import (
    HOST, Finding, Site, SiteHost, compare_cas, compare_files, compare_listeners, expected_listeners, job_manifest,
    load_site, matches, parse_listeners, parse_stat, pod_problem, report, ssh_config, summary, vos,
)
from ark.errors import ArkError
from ark.inventory import load_inventory
from ark.pillar import pillar_tree, write_pillar
from ark.pki import CaPem

REPO = Path(__file__).resolve().parents[2]
SALT_DIR = REPO / "salt"
EXAMPLE = REPO / "ark" / "examples" / "inventory.yaml"
ALL = ("control-plane", "worker", "registry", "ce")
IP = "10.213.24.51"

# `ss -ltnpH` on an all-in-one host as ark check found it (columns padded as ss pads them).
SS_TCP = """\
LISTEN 0      128         0.0.0.0:22    0.0.0.0:* users:(("sshd",pid=49,fd=3))
LISTEN 0      4096   10.213.24.51:10250 0.0.0.0:* users:(("kubelet",pid=851,fd=17))
LISTEN 0      4096      127.0.0.1:10259 0.0.0.0:* users:(("kube-scheduler",pid=426,fd=7))
LISTEN 0      4096      127.0.0.1:10251 0.0.0.0:* users:(("kube-scheduler",pid=426,fd=8))
LISTEN 0      4096      127.0.0.1:10257 0.0.0.0:* users:(("kube-controller",pid=384,fd=7))
LISTEN 0      4096      127.0.0.1:10248 0.0.0.0:* users:(("kubelet",pid=851,fd=26))
LISTEN 0      4096   10.213.24.51:8443  0.0.0.0:* users:(("arched",pid=2968,fd=6))
LISTEN 0      4096      127.0.0.1:43765 0.0.0.0:* users:(("containerd",pid=834,fd=11))
LISTEN 0      4096   10.213.24.51:6443  0.0.0.0:* users:(("kube-apiserver",pid=316,fd=7))
LISTEN 0      511    10.213.24.51:5000  0.0.0.0:* users:(("nginx",pid=1234,fd=13),("nginx",pid=1233,fd=13),("nginx",pid=1175,fd=13))
LISTEN 0      4096      127.0.0.1:2379  0.0.0.0:* users:(("etcd",pid=299,fd=8))
LISTEN 0      4096      127.0.0.1:2380  0.0.0.0:* users:(("etcd",pid=299,fd=7))
LISTEN 0      128            [::]:22       [::]:* users:(("sshd",pid=49,fd=4))
"""


def pillar(**over: Any) -> dict[str, Any]:
    """Pillar `ark` of an all-in-one host as the checks see it (defaults filled in)."""
    ark: dict[str, Any] = {
        "node_ip": IP,
        "kubernetes": {"version": "1.20.2", "apiserver": {"address": IP, "port": 6443}, "node_name": "ark-aio",
                       "admin_kubeconfig": "/etc/ark/admin.kubeconfig"},
        "registry": {"address": IP, "port": 5000,
                     "pull_user": {"name": "ark-pull", "password": "p"},
                     "push_users": {"alpha": {"name": "alpha-manager", "password": "a"}}},
        "arex": {"listen": IP, "port": 8443},
        "vo_defaults": {"namespace": "", "users": {}, "default_image": ""},
        "vos": {"alpha": {"namespace": "ark-alpha", "users": {"arkuser": 20001, "ark-alice": 20011},
                          "default_image": "base:1"},
                "beta": {"users": {"betauser": 20101}, "default_image": "tools:2"}},
        "bridge": {"kubeconfig": "/etc/ark/arkd.kubeconfig"},
    }
    ark.update(over)
    return ark


def aio(roles: tuple[str, ...] = ALL, **over: Any) -> SiteHost:
    return SiteHost("ark-aio", IP, roles, "root", 22, pillar(**over))


# --- listeners ---------------------------------------------------------------------------------


def test_parse_listeners_takes_the_first_process_of_each_socket():
    found = parse_listeners(SS_TCP)
    assert ("nginx", f"{IP}:5000") in found
    assert ("kube-controller", "127.0.0.1:10257") in found  # ss's 15 characters
    assert ("sshd", "[::]:22") in found
    assert len(found) == 13


def test_parse_listeners_names_a_socket_without_a_process():
    assert parse_listeners("UNCONN 0 0 0.0.0.0:5353 0.0.0.0:*\n\n") == {("?", "0.0.0.0:5353")}


def test_expected_listeners_come_from_the_hosts_pillar():
    host = aio(registry={**pillar()["registry"], "port": 5443},
               arex={"listen": IP, "port": 9443})
    expected = expected_listeners(host)
    assert set(expected) == {HOST, *ALL}
    assert expected[HOST] == {("sshd", "0.0.0.0:22"), ("sshd", "[::]:22")}
    assert expected["registry"] == {("nginx", f"{IP}:5443")}
    assert expected["ce"] == {("arched", f"{IP}:9443")}
    assert ("kube-apiserver", f"{IP}:6443") in expected["control-plane"]


def test_the_schedulers_plain_http_port_is_expected_on_loopback_until_its_release_removed_it():
    kubernetes = pillar()["kubernetes"]
    old, current = (expected_listeners(aio(kubernetes={**kubernetes, "version": v}))["control-plane"]
                    for v in ("1.20.2", "1.31.4"))
    assert old - current == {("kube-scheduler", "127.0.0.1:10251")}
    findings = compare_listeners(aio(), parse_listeners(SS_TCP.replace("127.0.0.1:10251", "0.0.0.0:10251")), set())
    assert {(f.role, f.ok) for f in findings if not f.ok} == {(HOST, False), ("control-plane", False)}


def test_an_all_in_one_host_listens_as_its_roles_say():
    findings = compare_listeners(aio(), parse_listeners(SS_TCP), set())
    assert [(f.role, f.ok) for f in findings] == [(HOST, True), ("control-plane", True), ("worker", True),
                                                  ("registry", True), ("ce", True)]
    assert findings[0].detail == "sshd 0.0.0.0:22, sshd [::]:22; no other TCP listener, nothing on UDP"


def test_a_listener_no_role_explains_fails_the_host():
    tcp = parse_listeners(SS_TCP) | {("python3", "0.0.0.0:8000")}
    udp = {("chronyd", "127.0.0.1:323")}
    (host, *roles) = compare_listeners(aio(), tcp, udp)
    assert not host.ok and all(f.ok for f in roles)
    assert host.detail == ("listening, but no role of the host's: python3 0.0.0.0:8000; "
                           "on UDP: chronyd 127.0.0.1:323")
    assert "ss -ltnup on ark-aio" in host.hint


def test_the_salt_masters_ports_are_expected_on_its_host_alone_whatever_its_process_is_called():
    with_master = SiteHost("ark-aio", IP, ALL, "root", 22, pillar(), salt_master=True)
    for process in ("/opt/salt/bin/p", "salt-master"):
        master = parse_listeners(SS_TCP) | {(process, f"{IP}:4505"), (process, f"{IP}:4506")}
        assert all(f.ok for f in compare_listeners(with_master, master, set()))
    (host, *_) = compare_listeners(aio(), master, set())
    assert host.detail == f"listening, but no role of the host's: salt-master {IP}:4505, salt-master {IP}:4506"
    (host, *_) = compare_listeners(with_master, parse_listeners(SS_TCP), set())
    assert not host.ok and f"{IP}:4505" in host.detail


def test_a_role_listening_elsewhere_fails_that_role_and_the_host():
    tcp = parse_listeners(SS_TCP) - {("kube-apiserver", f"{IP}:6443")} | {("kube-apiserver", "0.0.0.0:6443")}
    findings = {f.role: f for f in compare_listeners(aio(), tcp, set())}
    assert not findings["control-plane"].ok
    assert findings["control-plane"].detail == f"not listening: kube-apiserver {IP}:6443"
    assert "journalctl -u kube-apiserver" in findings["control-plane"].hint
    assert findings[HOST].detail == "listening, but no role of the host's: kube-apiserver 0.0.0.0:6443"
    assert findings["worker"].ok


def test_a_host_without_a_role_does_not_expect_its_listeners():
    only_ce = {("sshd", "0.0.0.0:22"), ("sshd", "[::]:22"), ("arched", f"{IP}:8443")}
    assert all(f.ok for f in compare_listeners(aio(("ce",)), only_ce, set()))
    (host, _) = compare_listeners(aio(("ce",)), only_ce | {("etcd", "127.0.0.1:2379")}, set())
    assert not host.ok


def test_arex_on_every_address_may_show_either_family():
    host = aio(arex={"listen": "0.0.0.0", "port": 8443})
    assert expected_listeners(host)["ce"] == {("arched", "*:8443")}
    for local in ("0.0.0.0:8443", "[::]:8443", "*:8443"):
        assert matches(("arched", local), ("arched", "*:8443"))
    assert not matches(("arched", "0.0.0.0:18443"), ("arched", "*:8443"))


def test_patterns_match_literally_but_for_the_star():
    assert matches(("containerd", "127.0.0.1:43765"), ("containerd", "127.0.0.1:*"))
    assert not matches(("containerd", "127.0.0.10:43765"), ("containerd", "127.0.0.1:*"))
    assert not matches(("sshd", "[:]:22"), ("sshd", "[::]:22"))  # brackets are not a character class
    assert not matches(("etcd", "127.0.0.1:2379"), ("etcd", "127x0.0.1:2379"))
    assert not matches(("kubelet", "127.0.0.1:2379"), ("etcd", "127.0.0.1:2379"))


# --- files and the CA -------------------------------------------------------------------------


def stats_for(host: SiteHost) -> dict[str, tuple[str, str, int]]:
    stats = {p: ("root", "root", 0o600) for role in (HOST, *host.roles) for p in check.SECRET_FILES.get(role, ())}
    stats["/etc/ark/registry/htpasswd"] = ("root", "www-data", 0o640)
    stats.update({p: ("etcd", "etcd", 0o600) for p in check.SERVICE_FILES["control-plane"]})
    return stats


def test_parse_stat():
    assert parse_stat("root root 600 /etc/ark/pki/ca.key\nroot www-data 640 /etc/ark/registry/htpasswd\n") == {
        "/etc/ark/pki/ca.key": ("root", "root", 0o600),
        "/etc/ark/registry/htpasswd": ("root", "www-data", 0o640),
    }


def test_private_files_pass_per_role():
    findings = compare_files(aio(), stats_for(aio()))
    assert [(f.role, f.ok) for f in findings] == [(HOST, True), ("control-plane", True), ("worker", True),
                                                  ("registry", True), ("ce", True)]
    assert findings[0].detail == "/etc/ark/pki/ca.key root:root 0600"
    assert findings[3].detail == "2 key and secret files root:root 0600, root:www-data 0640"


def test_a_readable_key_and_a_missing_one_fail_their_role():
    stats = stats_for(aio())
    stats["/etc/ark/pki/arkd.key"] = ("root", "root", 0o644)
    stats["/etc/ark/registry/htpasswd"] = ("root", "root", 0o640)
    del stats["/etc/ark/pki/kubelet.key"]
    failed = {f.role: f.detail for f in compare_files(aio(), stats) if not f.ok}
    assert failed == {
        "ce": "/etc/ark/pki/arkd.key is root:root 0644, not root:root 0600",
        "registry": "/etc/ark/registry/htpasswd is root:root 0640, not root:www-data 0640",
        "worker": "/etc/ark/pki/kubelet.key missing",
    }


def test_with_a_master_only_the_ca_server_may_hold_the_ca_key():
    worker = aio(("worker",), pki={"ca_server": "ark-cp"})
    stats = stats_for(aio(("worker",)))
    (stray,) = [f for f in compare_files(worker, stats) if not f.ok]
    assert (stray.check, stray.detail) == ("ca-key", "/etc/ark/pki/ca.key on a host that ark-cp signs for")
    del stats["/etc/ark/pki/ca.key"]
    findings = compare_files(worker, stats)
    assert all(f.ok for f in findings) and "no CA key (the CA server ark-cp's alone)" in [f.detail for f in findings]
    server = SiteHost("ark-cp", IP, ("control-plane",), "root", 22, pillar(pki={"ca_server": "ark-cp"}))
    assert [f for f in compare_files(server, stats) if not f.ok][0].detail.startswith("/etc/ark/pki/ca.key missing")


def test_only_the_control_plane_may_hold_the_cluster_admin_credential():
    ce = aio(("ce",))
    stats = stats_for(ce)
    assert [(f.check, f.ok) for f in compare_files(ce, stats)][-1] == ("cluster-admin", True)
    stats["/etc/ark/admin.kubeconfig"] = ("root", "root", 0o600)  # left by an earlier ARK
    (finding,) = [f for f in compare_files(ce, stats) if not f.ok]
    assert finding.check == "cluster-admin"
    assert finding.detail == "/etc/ark/admin.kubeconfig on a host that is not the control plane"
    assert all(f.check != "cluster-admin" for f in compare_files(aio(), stats_for(aio())))


CA1 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
CA2 = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"


def test_hosts_with_one_ca_pass():
    findings = compare_cas({"a": CA1, "b": CA1.strip(), "c": CA1})
    assert all(f.ok and f.role == HOST and f.check == "ca" for f in findings)
    assert findings[0].detail.endswith("the same on all 3 hosts")


def test_the_odd_ca_out_and_a_missing_one_fail():
    findings = {f.host: f for f in compare_cas({"a": CA1, "b": CA2, "c": CA1, "d": None})}
    assert findings["a"].ok and findings["c"].ok
    assert not findings["b"].ok and "is not most hosts'" in findings["b"].detail
    assert not findings["d"].ok and "missing" in findings["d"].detail


def test_the_pillars_ca_is_the_reference_when_given():
    findings = compare_cas({"a": CA1, "b": CA1}, pillar_ca=CA2)
    assert not any(f.ok for f in findings)
    assert "is not the pillar's site CA" in findings[0].detail


# --- the pillar -------------------------------------------------------------------------------


def test_vos_as_map_jinja_fills_them_in():
    alpha, beta = vos(pillar())
    assert alpha == check.Vo("alpha", "ark-alpha", 20001, "vo-alpha/base", "1",
                             {"name": "alpha-manager", "password": "a"})
    assert (beta.namespace, beta.uid, beta.repository, beta.tag, beta.push_user) == (
        "ark-beta", 20101, "vo-beta/tools", "2", None)


def test_load_site_reads_the_pillar_ark_init_writes(tmp_path):
    inventory = load_inventory(EXAMPLE, SALT_DIR)
    write_pillar(tmp_path / "pillar", pillar_tree(inventory, CaPem(CA1, "KEY")))
    site = load_site(inventory.hosts, tmp_path / "pillar", SALT_DIR)
    assert [h.name for h in site.hosts] == ["ark-cp", "ark-registry", "ark-ce", "ark-wn1", "ark-wn2"]
    ce = site.with_role("ce")
    assert ce.pillar["roles"] == ["ce"] and ce.pillar["node_ip"] == "10.0.0.13"
    assert ce.pillar["registry"]["pull_user"] == {"name": "ark-pull", "password": "change-me-pull"}
    assert ce.pillar["arex"]["port"] == 8443  # from salt/ark/defaults.yaml
    assert check.registry_url(site) == "10.0.0.12:5000"
    assert vos(ce.pillar)[0] == check.Vo("alpha", "ark-alpha", 20001, "vo-alpha/base", "1",
                                         {"name": "alpha-manager", "password": "change-me-alpha"})
    assert site.with_role("worker").node_name == "ark-wn1"
    assert expected_listeners(site.with_role("registry"))["registry"] == {("nginx", "10.0.0.12:5000")}


def test_load_site_without_a_pillar_says_so(tmp_path):
    with pytest.raises(ArkError, match="no pillar at .* give the pillar ark init wrote"):
        load_site([], tmp_path, SALT_DIR)


# --- the Job ----------------------------------------------------------------------------------


def test_the_job_runs_as_arkd_would_and_arkd_leaves_it_alone():
    vo = vos(pillar())[0]
    job = job_manifest("ark-check-1", vo, f"{IP}:5000/vo-alpha/base:1")
    assert job["metadata"]["namespace"] == "ark-alpha"
    assert "app.kubernetes.io/managed-by" in job["metadata"]["labels"]
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "arkd"
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 20001
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == f"{IP}:5000/vo-alpha/base:1"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert job["spec"]["backoffLimit"] == 0


def test_pod_problem_names_an_image_that_cannot_be_pulled():
    waiting = {"items": [{"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}}]}
    assert pod_problem(waiting) == 'ImagePullBackOff: Back-off pulling image "x"'
    creating = {"items": [{"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}}]}
    assert pod_problem(creating) is None
    assert pod_problem({"items": []}) is None


# --- SSH --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    roles: tuple[str, ...] = ("worker",)
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_host_key: str | None = None


def test_ssh_config_verifies_host_keys_and_records_none(tmp_path):
    hosts = [InventoryHost("ark-cp", "10.0.0.11"),
             InventoryHost("ark-wn2", "10.0.0.22", ssh_user="admin", ssh_port=2222, ssh_host_key="ssh-ed25519 AAAA")]
    text = ssh_config(hosts, known_hosts=tmp_path / "known_hosts", pinned=tmp_path / "pinned",
                      ssh_key=Path("/keys/id"), control_dir=tmp_path / "cm")
    cp, wn2 = text.split("\n\n")
    assert cp.splitlines()[:4] == ["Host ark-cp", "  HostName 10.0.0.11", "  User root", "  Port 22"]
    assert f"  UserKnownHostsFile {tmp_path / 'known_hosts'}" in cp.splitlines()
    assert f"  UserKnownHostsFile {tmp_path / 'pinned'}" in wn2.splitlines()
    for block in (cp, wn2):
        assert "  StrictHostKeyChecking yes" in block.splitlines()
        assert "  BatchMode yes" in block.splitlines()
        assert "  IdentityFile /keys/id" in block.splitlines()
    assert "  HostKeyAlias ark-wn2" in wn2.splitlines() and "  Port 2222" in wn2.splitlines()
    assert "accept-new" not in text and "StrictHostKeyChecking no" not in text


# --- checks through a (fake) testinfra host ----------------------------------------------------


@dataclass
class Result:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeInfra:
    """Answers commands as testinfra would run them (its get_command quoting included)."""
    answers: dict[str, str]
    ran: list[str] = field(default_factory=list)

    def run(self, command: str, *args: str) -> Result:
        line = command % args if args else command
        self.ran.append(line)
        for prefix, out in self.answers.items():
            if line.startswith(prefix):
                return Result(0, out)
        return Result(1, "", "unknown")

    def check_output(self, command: str) -> str:
        return self.run(command).stdout


def test_check_ports_runs_ss_for_tcp_and_udp():
    infra = FakeInfra({"ss -ltnpH": SS_TCP, "ss -lunpH": ""})
    assert all(f.ok for f in check.check_ports(infra, aio()))
    assert infra.ran == ["ss -ltnpH", "ss -lunpH"]


def test_check_files_stats_every_file_of_the_hosts_roles_at_once():
    stat_output = "".join(f"{u} {g} {m:o} {p}\n" for p, (u, g, m) in stats_for(aio()).items())
    infra = FakeInfra({"stat -c '%U %G %a %n' ": stat_output})
    findings = check.check_files(infra, aio())
    assert all(f.ok for f in findings) and len(findings) == 5
    (command,) = infra.ran
    assert "/etc/ark/pki/ca.key" in command and "/etc/ark/registry/htpasswd" in command


# --- the report -------------------------------------------------------------------------------


def test_report_lists_findings_per_host_and_role_with_what_to_look_at():
    findings = [
        Finding("ark-wn1", "worker", "services", False, "kubelet not running (failed)",
                "journalctl -u kubelet on ark-wn1"),
        Finding("ark-cp", "control-plane", "services", True, "etcd kube-apiserver enabled and running"),
        Finding("ark-cp", HOST, "ssh", True, "root@10.0.0.11:22, host key as in /site/known_hosts"),
        Finding("ark-wn1", HOST, "ssh", True, "root@10.0.0.21:22, host key as in /site/known_hosts"),
    ]
    assert report(findings, ["ark-cp", "ark-wn1"]).splitlines() == [
        "ark-cp host: ssh root@10.0.0.11:22, host key as in /site/known_hosts ok",
        "ark-cp control-plane: services etcd kube-apiserver enabled and running ok",
        "ark-wn1 host: ssh root@10.0.0.21:22, host key as in /site/known_hosts ok",
        "ark-wn1 worker: services FAILED: kubelet not running (failed)",
        "    next: journalctl -u kubelet on ark-wn1",
    ]
    assert summary(findings) == "1 of 4 checks FAILED: ark-wn1 worker services"
    assert summary(findings[1:3]) == "all 2 checks on 1 host ok"


def test_check_is_an_ark_command():
    parser = cli.build_parser()
    args = parser.parse_args(["check", "site.yaml", "--ssh-key", "k", "--known-hosts", "kh"])
    assert args.run is check.run_check
    assert (args.inventory, args.ssh_key, args.known_hosts, args.pillar) == (
        Path("site.yaml"), Path("k"), Path("kh"), None)
    assert isinstance(args, argparse.Namespace)


def test_failed_checks_exit_1(monkeypatch, tmp_path, capsys):
    failed = [Finding("ark-aio", HOST, "ssh", False, "cannot log in", "ssh root@10.0.0.1")]
    monkeypatch.setattr(check, "run_checks", lambda *a, **k: failed)
    inventory = tmp_path / "site.yaml"
    inventory.write_text("hosts:\n  ark-aio:\n    address: 10.0.0.1\n"
                         "    roles: [control-plane, worker, registry, ce]\n")
    assert cli.main(["check", str(inventory)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["ark-aio host: ssh FAILED: cannot log in", "    next: ssh root@10.0.0.1"]
    assert err.startswith("ark: 1 of 1 checks FAILED: ark-aio host ssh")


class LostConnection:
    """A testinfra host whose SSH connection dropped: every command raises, as testinfra's ssh
    backend does when ssh exits 255."""

    def run(self, command: str, *args: str) -> Result:
        raise RuntimeError(Result(255, "", "Connection closed by 10.213.24.51 port 22"))

    def check_output(self, command: str) -> str:
        return self.run(command).stdout

    def service(self, name: str) -> Any:
        raise RuntimeError(Result(255, "", "Connection closed by 10.213.24.51 port 22"))


@dataclass
class Probed:
    """A host whose every command prints `answer` (what a probe run as nobody found)."""

    answer: str
    commands: list[str] = field(default_factory=list)

    def run(self, command: str, *args: str) -> Any:
        self.commands.append(command % args)
        return argparse.Namespace(stdout=self.answer, stderr="")


def test_local_access_passes_only_where_nobody_gets_in():
    closed = Probed("closed: no answer without etcd's client certificate\n")
    (finding,) = check.check_local_access(closed, aio(("control-plane",)))
    assert finding.ok and finding.detail == ("etcd refuses a local account without privileges "
                                             "(no answer without etcd's client certificate)")
    assert closed.commands[0].startswith("setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c")
    (finding,) = check.check_local_access(Probed("open: http://127.0.0.1:2379/version\n"), aio(("control-plane",)))
    assert not finding.ok and finding.detail == "etcd is open to every local account (open: http://127.0.0.1:2379/version)"
    findings = check.check_local_access(Probed(""), aio())
    assert [(f.role, f.ok) for f in findings] == [("control-plane", False), ("registry", False)]
    assert check.check_local_access(Probed("open"), aio(("worker", "ce"))) == []


def test_a_check_that_cannot_finish_fails_and_the_others_go_on():
    findings = check.check_site(Site((aio(),)), {"ark-aio": LostConnection()})
    assert findings and not any(f.ok for f in findings)
    assert {f.check for f in findings} == {"services", "ports", "secrets", "local-access", "ca", "node",
                                                "accounts", "job"}
    ports = next(f for f in findings if f.check == "ports")
    assert ports.detail == "could not finish: RuntimeError: Connection closed by 10.213.24.51 port 22"
