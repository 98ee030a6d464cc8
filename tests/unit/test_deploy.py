"""ark deploy's pure parts: role order, what goes to the hosts, SSH options, highstate results
and the progress lines made from ansible-runner's events."""

import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ark import saltresult
from ark.deploy import (
    PLAYBOOKS, Events, ansible_inventory, group_name, master_config, minion_config, pillar_value, pip_install,
    runner_env, salt_requirements, salt_version, salt_wheels, ssh_options, write_tar,
)
from ark.errors import ArkError
from ark.inventory import role_groups

SALT_DIR = Path(__file__).resolve().parents[2] / "salt"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDnqCt0Hk1d1Zb0fS0vJ8QeE6m6H1B1iJm8Q3y2qf7c5"


@dataclass(frozen=True)
class Host:  # the fields of ark.inventory.Host that deploy uses
    name: str
    address: str
    roles: tuple[str, ...]
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_host_key: str | None = None


SPLIT = [
    Host("ark-ce", "10.0.0.13", ("ce",)),
    Host("ark-wn1", "10.0.0.21", ("worker",)),
    Host("ark-cp", "10.0.0.11", ("control-plane",), ssh_host_key=KEY),
    Host("ark-wn2", "10.0.0.22", ("worker",), ssh_user="admin", ssh_port=2222),
    Host("ark-registry", "10.0.0.12", ("registry",)),
]


def state(run_num, result=True, changes=None, comment="", sls="ark"):
    return {"result": result, "changes": changes or {}, "comment": comment, "__run_num__": run_num, "__sls__": sls}


HIGHSTATE = {
    "file_|-ark-hosts_|-/etc/hosts_|-managed": state(0, changes={"diff": "..."}),
    "pkg_|-containerd_|-containerd_|-installed": state(2, result=False, comment="Problem encountered installing\n"
                                                       "package(s): E: Unable to locate package containerd",
                                                       sls="kubernetes.node"),
    "service_|-kubelet_|-kubelet_|-running": state(3, result=False, comment="One or more requisite failed: "
                                                   "kubernetes.node.containerd", sls="kubernetes.node"),
    "file_|-ark-sysctl_|-/etc/sysctl.d/60-ark-node.conf_|-managed": state(1),
}


# --- role order --------------------------------------------------------------------------------


def test_role_groups_run_control_plane_registry_workers_ce():
    assert role_groups(SPLIT) == {"control-plane": ["ark-cp"], "registry": ["ark-registry"],
                                  "worker": ["ark-wn1", "ark-wn2"], "ce": ["ark-ce"]}


def test_a_host_with_several_roles_runs_once_at_its_first_role():
    hosts = [Host("aio", "10.0.0.2", ("ce", "worker", "registry", "control-plane")),
             Host("cerw", "10.0.0.3", ("ce", "worker"))]
    assert role_groups(hosts) == {"control-plane": ["aio"], "registry": [], "worker": ["cerw"], "ce": []}


def test_the_playbook_runs_the_groups_in_role_order_twice():
    plays = yaml.safe_load((PLAYBOOKS / "deploy.yml").read_text())
    imported = [(p["vars"]["ark_pass"], p["vars"]["ark_hosts"]) for p in plays if "vars" in p]
    order = [group_name(role) for role in ("control-plane", "registry", "worker", "ce")]
    assert plays[0] == {"import_playbook": "salt.yml"}
    assert imported == [("first", g) for g in order] + [("second", g) for g in order]
    (salt,) = yaml.safe_load((PLAYBOOKS / "salt.yml").read_text())
    assert salt["hosts"] == "all" and salt["any_errors_fatal"] is True
    (highstate,) = yaml.safe_load((PLAYBOOKS / "highstate.yml").read_text())
    assert highstate["any_errors_fatal"] is True
    argv = highstate["tasks"][0]["ansible.builtin.command"]["argv"]
    assert "--retcode-passthrough" in argv and "--out=json" in argv and argv[-1] == "state.highstate"


def test_with_a_master_every_play_stops_at_the_first_failure_and_the_orchestrate_runs_twice():
    plays = yaml.safe_load((PLAYBOOKS / "deploy-master.yml").read_text())
    assert plays[0] == {"import_playbook": "salt.yml"}
    assert all(play["any_errors_fatal"] is True for play in plays[1:])
    tasks = [task for play in plays[1:] for task in play["tasks"]]
    orchestrates = [t for t in tasks if t["name"].startswith("orchestrate")]
    assert [t["name"] for t in orchestrates] == ["orchestrate (first pass)", "orchestrate (second pass)"]
    assert all(t["ansible.builtin.command"]["argv"][-2:] == ["state.orchestrate", "orch.site"] for t in orchestrates)
    # No key is accepted but the ones read from the minions.
    assert "auto_accept" not in master_config("10.0.0.11") and "salt-key -A" not in str(plays)


# --- what goes to the hosts --------------------------------------------------------------------


def test_the_salt_version_is_the_one_versions_yaml_pins():
    assert salt_version(SALT_DIR) == "3008.4"


def test_a_salt_tree_without_a_version_is_refused(tmp_path):
    (tmp_path / "ark").mkdir()
    (tmp_path / "ark" / "versions.yaml").write_text("kubernetes: {}\n")
    with pytest.raises(ArkError, match="no Salt version"):
        salt_version(tmp_path)


SALT_WHEELS = {"salt-3008.4-py3-none-any.whl": "a" * 64, "PyYAML-6.0.3-cp311-cp311-linux_x86_64.whl": "b" * 64}


def test_pip_installs_exactly_the_pillars_salt_wheels_each_checked_against_its_sha256():
    assert salt_requirements("http://10.213.23.1:8021/", SALT_WHEELS) == (
        f"http://10.213.23.1:8021/PyYAML-6.0.3-cp311-cp311-linux_x86_64.whl --hash=sha256:{'b' * 64}\n"
        f"http://10.213.23.1:8021/salt-3008.4-py3-none-any.whl --hash=sha256:{'a' * 64}\n")
    argv = pip_install("http://10.213.23.1:8021")
    assert argv[0] == "/opt/salt/bin/pip"
    assert {"--no-deps", "--require-hashes"} <= set(argv) and "--find-links" not in argv
    assert argv[argv.index("-r") + 1] == "/opt/salt/ark-requirements.txt"
    assert argv[argv.index("--trusted-host") + 1] == "10.213.23.1"
    assert "--trusted-host" not in pip_install("https://files.example.org/ark/")


def test_a_pillar_without_the_salt_wheels_or_with_a_bad_sha256_is_refused(tmp_path):
    (tmp_path / "top.sls").write_text("base:\n  '*':\n    - site\n")
    (tmp_path / "site.sls").write_text(yaml.safe_dump({"ark": {"wheels": {"salt": {}}}}))
    with pytest.raises(ArkError, match="no ark:wheels:salt with Salt 3008.4's wheel: merge the pillar.yaml"):
        salt_wheels(tmp_path, "ark-cp", "3008.4")
    (tmp_path / "site.sls").write_text(yaml.safe_dump({"ark": {"wheels": {"salt": {
        **SALT_WHEELS, "salt-3008.4-py3-none-any.whl": "not-a-hash"}}}}))
    with pytest.raises(ArkError, match=r"ark:wheels:salt:salt-3008.4-py3-none-any.whl: not a sha256"):
        salt_wheels(tmp_path, "ark-cp", "3008.4")
    (tmp_path / "site.sls").write_text(yaml.safe_dump({"ark": {"wheels": {"salt": SALT_WHEELS}}}))
    assert salt_wheels(tmp_path, "ark-cp", "3008.4") == SALT_WHEELS


def test_the_minion_is_masterless_with_the_inventory_name():
    assert yaml.safe_load(minion_config("ark-cp")) == {
        "id": "ark-cp", "file_client": "local",
        "file_roots": {"base": ["/srv/ark/salt"]}, "pillar_roots": {"base": ["/srv/ark/pillar"]},
    }


def write_pillar(directory, top, files):
    directory.mkdir()
    (directory / "top.sls").write_text(yaml.safe_dump({"base": top}))
    for name, document in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(yaml.safe_dump(document))
    return directory


def test_pillar_values_merge_as_salt_does_the_later_file_over_the_earlier(tmp_path):
    pillar = write_pillar(tmp_path / "pillar", {"*": ["site", "local"], "ark-cp": ["hosts.ark-cp"]}, {
        "site.sls": {"ark": {"files_repo": "http://example/", "apt": {"proxy": "x"}}},
        "local.sls": {"ark": {"files_repo": "http://10.213.23.1:8021"}},
        "hosts/ark-cp.sls": {"ark": {"roles": ["control-plane"]}},
    })
    assert pillar_value(pillar, "ark-cp", "ark:files_repo") == "http://10.213.23.1:8021"
    assert pillar_value(pillar, "ark-cp", "ark:roles") == ["control-plane"]
    assert pillar_value(pillar, "ark-wn1", "ark:roles") is None
    assert pillar_value(pillar, "ark-cp", "ark:apt:proxy") == "x"


def test_the_pillar_travels_root_only_and_the_same_tree_gives_the_same_tar(tmp_path):
    pillar = write_pillar(tmp_path / "pillar", {"*": ["site"]}, {"site.sls": {"ark": {}},
                                                                   "hosts/ark-cp.sls": {"ark": {}}})
    (pillar / "ca").mkdir()
    (pillar / "ca" / "ca.key").write_text("secret")
    write_tar(pillar, tmp_path / "a.tar", private=True, only="*.sls")
    write_tar(pillar, tmp_path / "b.tar", private=True, only="*.sls")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["hosts", "hosts/ark-cp.sls", "site.sls", "top.sls"]
    assert members["hosts"].mode == 0o700 and members["site.sls"].mode == 0o600
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


# --- SSH ---------------------------------------------------------------------------------------


def options(args):
    return dict(arg.split("=", 1) for arg in args[1::2])


def test_a_host_key_from_the_inventory_is_the_only_one_accepted(tmp_path):
    opts = options(ssh_options(SPLIT[2], known_hosts=tmp_path / "known_hosts", pinned=tmp_path / "pinned",
                               recorded=False, ssh_key=None))
    assert opts["UserKnownHostsFile"] == str(tmp_path / "pinned")
    assert opts["StrictHostKeyChecking"] == "yes" and opts["GlobalKnownHostsFile"] == "/dev/null"
    assert opts["HostKeyAlias"] == "ark-cp"


def test_other_host_keys_are_recorded_on_first_contact_and_enforced_after(tmp_path):
    first = options(ssh_options(SPLIT[0], known_hosts=tmp_path / "kh", pinned=tmp_path / "p", recorded=False,
                                ssh_key=None))
    later = options(ssh_options(SPLIT[0], known_hosts=tmp_path / "kh", pinned=tmp_path / "p", recorded=True,
                                ssh_key=None))
    assert first["UserKnownHostsFile"] == later["UserKnownHostsFile"] == str(tmp_path / "kh")
    assert (first["StrictHostKeyChecking"], later["StrictHostKeyChecking"]) == ("accept-new", "yes")


def test_host_key_checking_stays_on_under_ansible_runner():
    # ansible-runner sets ANSIBLE_HOST_KEY_CHECKING=False unless the environment says otherwise.
    assert runner_env(Path("/tmp/ansible.cfg"))["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_the_ansible_inventory_groups_hosts_by_first_role_with_their_ssh_settings(tmp_path):
    known = tmp_path / "known hosts"  # a space survives ansible's shlex split
    known.write_text(f"ark-ce {KEY}\n")
    inventory = ansible_inventory(SPLIT, files_repo={h.name: "http://10.0.0.5:8080" for h in SPLIT},
                                  wheels={h.name: SALT_WHEELS for h in SPLIT}, known_hosts=known, pinned=tmp_path / "pinned",
                                  ssh_key=Path("/keys/id_ed25519"))
    hosts, groups = inventory["all"]["hosts"], inventory["all"]["children"]
    assert list(groups) == ["ark_control_plane", "ark_registry", "ark_worker", "ark_ce"]
    assert list(groups["ark_worker"]["hosts"]) == ["ark-wn1", "ark-wn2"]
    wn2 = hosts["ark-wn2"]
    assert (wn2["ansible_host"], wn2["ansible_port"], wn2["ansible_user"]) == ("10.0.0.22", 2222, "admin")
    assert wn2["ansible_become"] is True and "ansible_become" not in hosts["ark-cp"]
    assert wn2["ansible_ssh_private_key_file"] == "/keys/id_ed25519"
    ce = options(shlex.split(hosts["ark-ce"]["ansible_ssh_common_args"]))
    assert ce["UserKnownHostsFile"] == str(known) and ce["StrictHostKeyChecking"] == "yes"
    assert options(shlex.split(wn2["ansible_ssh_common_args"]))["StrictHostKeyChecking"] == "accept-new"
    assert yaml.safe_load(hosts["ark-ce"]["ark_minion_config"])["id"] == "ark-ce"


def test_with_a_master_only_it_gets_the_trees_and_every_minion_is_told_where_it_is(tmp_path):
    inventory = ansible_inventory(SPLIT, files_repo={h.name: "http://10.0.0.5:8080" for h in SPLIT},
                                  wheels={h.name: SALT_WHEELS for h in SPLIT}, known_hosts=tmp_path / "kh",
                                  pinned=tmp_path / "pinned", ssh_key=None, master="ark-cp",
                                  minion_options={"systemd.scope": False})
    hosts, groups = inventory["all"]["hosts"], inventory["all"]["children"]
    assert list(groups["ark_salt_master"]["hosts"]) == ["ark-cp"]
    assert {name for name, host in hosts.items() if host["ark_trees"]} == {"ark-cp"}
    assert {name for name, host in hosts.items() if "ark_master_config" in host} == {"ark-cp"}
    assert yaml.safe_load(hosts["ark-cp"]["ark_master_config"]) == {
        "interface": "10.0.0.11", "file_roots": {"base": ["/srv/ark/salt"]}, "pillar_roots": {"base": ["/srv/ark/pillar"]},
        "peer": {".*": ["x509.sign_remote_certificate"]}}
    assert yaml.safe_load(hosts["ark-wn1"]["ark_minion_config"]) == {
        "id": "ark-wn1", "master": "10.0.0.11", "systemd.scope": False}
    masterless = ansible_inventory(SPLIT, files_repo={h.name: "http://10.0.0.5:8080" for h in SPLIT},
                                   wheels={h.name: SALT_WHEELS for h in SPLIT}, known_hosts=tmp_path / "kh",
                                   pinned=tmp_path / "pinned", ssh_key=None)
    assert all(host["ark_trees"] for host in masterless["all"]["hosts"].values())
    assert "ark_salt_master" not in masterless["all"]["children"]


# --- highstate results -------------------------------------------------------------------------


def test_a_summary_counts_states_changes_and_failures_in_run_order():
    summary = saltresult.summarize(HIGHSTATE)
    assert summary.states == 4
    assert summary.changed == ("file_|-ark-hosts_|-/etc/hosts_|-managed",)
    assert summary.failed == ("pkg_|-containerd_|-containerd_|-installed", "service_|-kubelet_|-kubelet_|-running")


def test_a_failure_names_the_state_that_failed_by_itself_with_salts_comment():
    line = saltresult.failure(HIGHSTATE, 2)
    assert line == ("state containerd (pkg.installed, kubernetes.node.sls) failed: Problem encountered installing "
                    "package(s): E: Unable to locate package containerd (1 more states failed, some because this "
                    "one did)")


def test_a_render_error_names_the_pillar_key():
    errors = ["Rendering SLS 'base:ark' failed: Jinja error: pillar ark:registry:address: expected an IPv4\n"
              "address; ...\n; line 12\n---\n[...]"]
    assert saltresult.failure(errors, 1) == ("the states do not render: pillar ark:registry:address: expected "
                                             "an IPv4")


def test_salt_call_output_without_json_is_no_result():
    assert saltresult.parse("Traceback (most recent call last):") is None
    assert saltresult.parse(json.dumps({"local": ["No matching sls found"]})) == ["No matching sls found"]
    assert saltresult.failure(None, 1, "boom\nImportError: no module named salt\n") == (
        "salt-call exited with 1 without a result: ImportError: no module named salt")


# --- events ------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def event(kind, host, task, res=None):
    return {"event": kind, "event_data": {"host": host, "task": task, "res": res or {}}}


def events_for(hosts=SPLIT):
    lines, clock = [], Clock()
    return Events(hosts, lines.append, known_hosts=Path("/site/known_hosts"), clock=clock), lines, clock


def highstate_res(result, rc=0):
    return {"rc": rc, "stdout": json.dumps({"local": result}), "stderr": ""}


def test_one_line_per_host_and_step():
    handle, lines, clock = events_for()
    handle(event("runner_on_start", "ark-cp", "salt 3008.4: installed version"))
    handle(event("runner_on_ok", "ark-cp", "salt 3008.4: installed version", {"changed": False}))
    handle(event("runner_on_ok", "ark-cp", "salt 3008.4: virtualenv /opt/salt", {"changed": True}))
    clock.now = 21.4
    handle(event("runner_on_ok", "ark-cp", "salt 3008.4", {"changed": True}))
    handle(event("runner_on_start", "ark-cp", "states and pillar: upload"))
    handle(event("runner_on_skipped", "ark-cp", "states and pillar"))
    handle(event("runner_on_start", "ark-cp", "highstate (first pass)"))
    clock.now = 62.6
    ok = dict(HIGHSTATE, **{key: state(n) for n, key in enumerate(HIGHSTATE) if "_|-ark-hosts" not in key})
    handle(event("runner_on_ok", "ark-cp", "highstate (first pass)", highstate_res(ok)))
    assert lines == [
        "==> ark-cp: salt 3008.4 ... ok, installed, 21 s",
        "==> ark-cp: states and pillar ... ok, unchanged, 0 s",
        "==> ark-cp: highstate (first pass) ... ok, 4 states, 1 changed, 41 s",
    ]
    assert handle.result.first["ark-cp"][0] == 0 and handle.result.ok


def test_a_failed_highstate_is_one_error_line_naming_host_and_state():
    handle, lines, _ = events_for()
    handle(event("runner_on_failed", "ark-wn1", "highstate (first pass)", highstate_res(HIGHSTATE, rc=2)))
    assert lines == ["==> ark-wn1: highstate (first pass) ... failed, 4 states, 1 changed, 2 failed, 0 s"]
    (error,) = handle.result.errors
    assert error.startswith("ark-wn1: highstate (first pass): state containerd (pkg.installed, kubernetes.node.sls) "
                            "failed: Problem encountered")
    assert handle.result.first["ark-wn1"] == (2, HIGHSTATE)


def test_a_second_pass_that_changes_something_fails_naming_the_states():
    handle, lines, _ = events_for()
    ok = {key: state(n, changes={"x": 1} if n == 1 else None) for n, key in enumerate(HIGHSTATE)}
    handle(event("runner_on_ok", "ark-ce", "highstate (second pass)", highstate_res(ok)))
    assert handle.result.errors == [
        "ark-ce: highstate (second pass) changed 1 states, expected none: containerd (pkg.installed, ark.sls)"]
    assert lines == ["==> ark-ce: highstate (second pass) ... failed, 4 states, 1 changed (expected none), 0 s"]
    assert handle.result.second["ark-ce"][1] == ok


def test_a_changed_host_key_is_a_clear_error():
    handle, lines, _ = events_for()
    msg = ("Failed to connect to the host via ssh: @@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"
           "     @\n...\nHost key verification failed.")
    handle(event("runner_on_unreachable", "ark-ce", "salt 3008.4: installed version", {"msg": msg, "unreachable": True}))
    handle(event("runner_on_unreachable", "ark-cp", "salt 3008.4: installed version", {"msg": msg, "unreachable": True}))
    assert handle.result.errors == [
        "ark-ce: the SSH host key of root@10.0.0.13:22 is not the one ark recorded in /site/known_hosts: refusing "
        "to connect (if the host was reinstalled, remove the line for ark-ce from that file)",
        "ark-cp: the SSH host key of root@10.0.0.11:22 is not hosts.ark-cp.ssh_host_key of the inventory: refusing "
        "to connect (if the host was reinstalled, put its new key in the inventory)",
    ]
    assert lines[0] == "==> ark-ce: salt 3008.4 ... unreachable, 0 s"


def test_a_failed_install_step_names_the_task_and_why():
    handle, _, _ = events_for()
    handle(event("runner_on_failed", "ark-cp", "salt 3008.4: virtualenv /opt/salt",
                 {"rc": 1, "stdout": "The virtual environment was not created successfully because ensurepip is "
                                     "not available.", "stderr": ""}))
    assert handle.result.errors == ["ark-cp: salt 3008.4: virtualenv /opt/salt failed: python3 -m venv does not "
                                    "work: install Debian's python3-venv on the host first"]


def test_a_failed_loop_item_says_which_and_why():
    handle, _, _ = events_for()
    handle(event("runner_on_failed", "ark-cp", "states and pillar", {
        "msg": "One or more items failed", "results": [
            {"changed": True, "_ansible_item_label": "salt"},
            {"failed": True, "_ansible_item_label": "pillar", "msg": "Failed to find handler for pillar.tar"}]}))
    assert handle.result.errors == ["ark-cp: states and pillar failed: pillar: Failed to find handler for pillar.tar"]


# --- the master's orchestrate ------------------------------------------------------------------


def orch_step(run_num, role, result=True, ret=None, comment="", ran=True):
    step = {"name": f"ark-highstate-{role}", "result": result, "comment": comment, "__run_num__": run_num,
            "__id__": f"ark-highstate-{role}", "changes": {"out": "highstate", "ret": ret} if ret else {}}
    if not ran:
        step["__state_ran__"] = False
    return f"salt_|-ark-highstate-{role}_|-ark-highstate-{role}_|-state", step


def orchestrate_res(*steps, rc=0):
    return {"rc": rc, "stdout": json.dumps({"data": {"ark-cp_master": dict(steps)}, "outputter": "highstate",
                                            "retcode": rc}), "stderr": ""}


CHANGED = {"file_|-ark-hosts_|-/etc/hosts_|-managed": state(0, changes={"diff": "..."}), "x_|-y_|-z_|-w": state(1)}


def test_the_orchestrate_gives_each_host_its_highstate_line():
    handle, lines, _ = events_for()
    handle(event("runner_on_start", "ark-cp", "orchestrate (first pass)"))
    handle(event("runner_on_ok", "ark-cp", "orchestrate (first pass)", orchestrate_res(
        orch_step(0, "control-plane", ret={"ark-cp": CHANGED}), orch_step(1, "registry"),
        orch_step(2, "worker", ret={"ark-wn2": CHANGED}), orch_step(3, "ce", ret={"ark-ce": CHANGED}))))
    assert lines == [
        "==> ark-cp: orchestrate (first pass): highstate of every host in role order, from the master (minutes "
        "on a new site; salt-run jobs.active on the master shows the running one)",
        "==> ark-cp: highstate (first pass) ... ok, 2 states, 1 changed, 0 s",
        "==> ark-registry: highstate (first pass) ... ok, nothing changed, 0 s",
        "==> ark-wn1: highstate (first pass) ... ok, nothing changed, 0 s",
        "==> ark-wn2: highstate (first pass) ... ok, 2 states, 1 changed, 0 s",
        "==> ark-ce: highstate (first pass) ... ok, 2 states, 1 changed, 0 s",
        "==> ark-cp: orchestrate (first pass) ... ok, 0 s",
    ]
    assert handle.result.ok and set(handle.result.first) == {h.name for h in SPLIT}
    assert handle.result.first["ark-wn2"] == (0, CHANGED) and handle.result.first["ark-wn1"] == (0, {})


def test_an_orchestrate_failure_names_the_host_and_the_state_and_skips_the_later_groups():
    handle, _, _ = events_for()
    handle(event("runner_on_failed", "ark-cp", "orchestrate (first pass)", orchestrate_res(
        orch_step(0, "control-plane"),
        orch_step(1, "registry", result=False, ret={"ark-registry": HIGHSTATE}, comment="Run failed on minions"),
        orch_step(2, "worker", result=False, ran=False, comment="One or more requisite failed"),
        orch_step(3, "ce", result=False, ran=False, comment="One or more requisite failed"), rc=1)))
    (error,) = handle.result.errors
    assert error.startswith("ark-registry: highstate (first pass): state containerd (pkg.installed, "
                            "kubernetes.node.sls) failed: Problem encountered")
    assert set(handle.result.first) == {"ark-cp", "ark-registry"}


def test_a_ca_server_that_fails_is_named_with_its_state_and_no_group_runs():
    handle, _, _ = events_for()
    ca = {"name": "ark-ca-server", "__id__": "ark-ca-server", "result": False, "__run_num__": 0,
          "comment": "Run failed on minions: ark-cp", "changes": {"out": "highstate", "ret": {"ark-cp": HIGHSTATE}}}
    handle(event("runner_on_failed", "ark-cp", "orchestrate (first pass)", orchestrate_res(
        ("salt_|-ark-ca-server_|-ark-ca-server_|-state", ca),
        orch_step(1, "control-plane", result=False, ran=False, comment="One or more requisite failed"), rc=1)))
    (error,) = handle.result.errors
    assert error.startswith("ark-cp: orchestrate (first pass): the site CA and its signing policies: state "
                            "containerd (pkg.installed, kubernetes.node.sls) failed")
    assert handle.result.first == {}


def test_a_minion_that_does_not_answer_the_master_is_named():
    handle, _, _ = events_for()
    handle(event("runner_on_failed", "ark-cp", "orchestrate (first pass)", orchestrate_res(
        orch_step(0, "control-plane", result=False, ret={"ark-cp": False}, comment="Run failed on minions: ark-cp"),
        rc=1)))
    assert handle.result.errors == ["ark-cp: highstate (first pass): the minion did not answer the master "
                                    "(is salt-minion running there?)"]


def test_a_second_orchestrate_that_changes_something_fails_naming_the_states():
    handle, _, _ = events_for()
    handle(event("runner_on_ok", "ark-cp", "orchestrate (second pass)", orchestrate_res(
        orch_step(0, "control-plane"), orch_step(1, "registry"), orch_step(2, "worker", ret={"ark-wn1": CHANGED}),
        orch_step(3, "ce"))))
    assert handle.result.errors == ["ark-wn1: highstate (second pass) changed 1 states, expected none: ark-hosts "
                                    "(file.managed, ark.sls)"]
    assert set(handle.result.second) == {h.name for h in SPLIT}


def test_an_orchestrate_that_does_not_render_or_print_json_is_one_error_on_the_master():
    handle, _, _ = events_for()
    handle(event("runner_on_failed", "ark-cp", "orchestrate (first pass)", {
        "rc": 1, "stderr": "", "stdout": json.dumps({"data": {"ark-cp_master": [
            "Rendering SLS 'base:orch.site' failed: Jinja error: pillar ark_orchestrate:groups is empty"]}})}))
    handle(event("runner_on_failed", "ark-cp", "orchestrate (second pass)",
                 {"rc": 1, "stdout": "", "stderr": "Traceback...\nsalt.exceptions.SaltClientError: no master\n"}))
    assert handle.result.errors == [
        "ark-cp: orchestrate (first pass): orch.site does not render: Rendering SLS 'base:orch.site' failed: Jinja "
        "error: pillar ark_orchestrate:groups is empty",
        "ark-cp: orchestrate (second pass): salt-run exited with 1 without a result: "
        "salt.exceptions.SaltClientError: no master",
    ]
