"""Every state file renders for each role with the example site pillar, and a bad pillar stops
highstate at render time with its pillar key in the message. No host needed: salt-call
--local renders into a throwaway directory (see conftest.py); a template error shows up here in
seconds instead of halfway through a highstate.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from arc_bridge.config import parse_config
from ark.bundle import DEBIAN_PACKAGES

from .conftest import SALT_ROOT, SaltRun

ROLE_FORMULAS = {
    # The cluster's objects for arkd are applied with the cluster-admin credential, which only the
    # control plane holds.
    "control-plane": ["kubernetes.control_plane", "arc_bridge.deployed"],
    # The shared session directory, when ARK serves it: the CE serves and mounts it before A-REX
    # starts; the workers' kubelets mount it.
    "worker": ["kubernetes.node", "sessions"],
    "registry": ["registry"],
    "ce": ["sessions", "arex", "arc_bridge"],
}
ALL_ROLES = list(ROLE_FORMULAS)
# The example site's checksums are each site's own; the render needs some of the right shape.
BASE = ("checksums",)
# name: (overlays on pillar/site.sls, the roles that site gives the host)
SITES = {
    "all-in-one": (BASE, ALL_ROLES),
    "control-plane": (BASE + ("site_ca", "role_control_plane"), ["control-plane"]),
    "worker": (BASE + ("site_ca", "role_worker"), ["worker"]),
    "registry": (BASE + ("site_ca", "role_registry"), ["registry"]),
    "ce": (BASE + ("site_ca", "role_ce"), ["ce"]),
    "two-vos": (BASE + ("two_vos",), ALL_ROLES),
    "upstream-release": (BASE + ("upstream_release",), ALL_ROLES),
    "apt-repository": (BASE + ("apt_repository",), ALL_ROLES),
    "glusterfs-sessions": (BASE + ("glusterfs_sessions",), ALL_ROLES),
    "glusterfs-sessions-worker": (BASE + ("site_ca", "role_worker", "glusterfs_sessions"), ["worker"]),
}
# Formulas with states only on a site whose pillar asks for them (by the overlay named).
ONLY_WITH = {"sessions": "glusterfs_sessions"}
# The site whose states install every package ark bundle carries.
EVERY_PACKAGE_SITE = "glusterfs-sessions"
# test pillar: the pillar key its message must name
BAD_PILLARS = {
    "bad_missing_default_image": "vos:alpha:default_image",
    "bad_default_image_not_listed": "vos:alpha:default_image",
    "bad_queue_unknown_vo": "queues:default:vos",
    "bad_quota_memory": "vos:alpha:quota:memory",
    "bad_quota_cpu": "vos:alpha:quota:cpu",
    "bad_limits_memory": "vos:alpha:limits:default_memory",
    "bad_duplicate_uid": "vos:beta:users:bob",
    "bad_unknown_role": "roles",
    "bad_node_ip": "node_ip",
    "bad_missing_pull_password": "registry:pull_user:password",
    "bad_missing_admin_password": "registry:admin_user:password",
    "bad_apt_proxy": "apt:proxy",
    "bad_apt_repository_url": "apt:repository:url",
    "bad_apt_repository_key": "apt:repository:key",
    "bad_apt_repository_no_key": "apt:repository:key",
    "bad_hosts_address": "hosts:ark-node-1",
    "bad_pod_cidr_overlap": "kubernetes:pod_cidr",
    "bad_service_cidr": "kubernetes:service_cidr",
    "bad_scheduler_backoff": "kubernetes:scheduler_backoff_seconds",
    "bad_rte_null_and_image": "vos:beta:runtime_environments:ENV/PROXY",
    "bad_wheel_sha256": "wheels:bridge:arc_bridge-0.1.0-py3-none-any.whl",
    "bad_max_priority": "vos:alpha:max_priority",
    "bad_unlimited_memory_with_vo_default": "queues:default:memory_limit_factor",
    # a host of a split site without the site's CA, or with a key that is not the CA's
    "role_worker": "pki:ca",
    "bad_ca_mismatch": "pki:ca:key",
    "bad_ca_encrypted": "pki:ca:key",
    # a worker that is told where everything is but the API server
    "bad_worker_without_apiserver": "kubernetes:apiserver:address",
    "bad_session_volume_type": "bridge:session_volume:type",
    "bad_glusterfs_brick_in_sessiondir": "bridge:session_volume:glusterfs:brick",
    # a control plane told to make the session claims, but not where the CE is
    "bad_glusterfs_without_server": "bridge:session_volume:glusterfs:server",
}
HIGHSTATE_BAD = "bad_queue_unknown_vo"
NGINX_TEMPLATE = "salt://registry/files/nginx-registry.conf.jinja"


def formulas(roles: list[str]) -> list[str]:
    """What top.sls must give a host with these roles, in order."""
    listed = [f for role in ALL_ROLES if role in roles for f in ROLE_FORMULAS[role]]
    return ["ark"] + list(dict.fromkeys(listed))


def state_files(formula: str) -> list[str]:
    """SLS names of every state file of a formula, but for those the top file gives a role of
    their own (or the one file such a top entry names)."""
    directory = SALT_ROOT.joinpath(*formula.split("."))
    if directory.with_suffix(".sls").is_file():
        return [formula]
    entries = {entry for role_entries in ROLE_FORMULAS.values() for entry in role_entries}
    names = (formula if p.stem == "init" else f"{formula}.{p.stem}" for p in directory.glob("*.sls"))
    return sorted(name for name in names if name == formula or name not in entries)


def site_sls(site: str) -> list[str]:
    return [sls for formula in formulas(SITES[site][1]) for sls in state_files(formula)]


@pytest.fixture(scope="session")
def runs(salt_render) -> dict[tuple[str, str], SaltRun]:
    """All salt-calls of this module, one per CPU at a time: each spends a second or so starting
    Salt, which dominates the suite's time."""
    jobs = {}
    for site, (overlays, _) in SITES.items():
        jobs[("top", site)] = (overlays, "state.show_top")
        jobs[("sls", site)] = (overlays, "state.show_sls", ",".join(site_sls(site)))
    # The apply path, mocked: even with validation broken no state function would run here (Salt
    # would still run the read-only unless/onlyif checks). Mostly just `ark`, which top.sls gives
    # every host first; the whole highstate once, as it renders every file.
    for bad in BAD_PILLARS:
        jobs[("bad", bad)] = (BASE + (bad,), "state.apply", "ark", "mock=True")
    jobs[("bad-highstate", HIGHSTATE_BAD)] = (BASE + (HIGHSTATE_BAD,), "state.highstate", "mock=True")
    # A file template is rendered only when its state runs: render the registry proxy's here.
    jobs[("nginx", "two-vos")] = (SITES["two-vos"][0], "cp.get_template", NGINX_TEMPLATE,
                                  str(salt_render.workdir / "nginx-two-vos.conf"), "htpasswd=/etc/ark/registry/htpasswd",
                                  "backend=/run/ark-registry/registry.sock")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {key: pool.submit(salt_render, job[0], *job[1:]) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def failures(run: SaltRun) -> str:
    if isinstance(run.result, list):
        return "\n\n".join(str(e)[:3000] for e in run.result)
    return run.output[-6000:]


@pytest.mark.parametrize("site", SITES)
def test_top_selects_formulas_by_role(runs, site):
    run = runs[("top", site)]
    assert run.rendered, failures(run)
    assert run.result == {"base": formulas(SITES[site][1])}


@pytest.mark.parametrize("site", SITES)
def test_site_renders(runs, site):
    """Every state file the site's roles use, including those only included (kubernetes.pki)."""
    run = runs[("sls", site)]
    assert run.rendered, failures(run)


@pytest.mark.parametrize(
    ("site", "formula"),
    [(site, formula) for site, (_, roles) in SITES.items() for formula in formulas(roles)],
)
def test_state_files_render(runs, site, formula):
    """Points at the formula whose files fail; test_site_renders catches the rest."""
    files = state_files(formula)
    run = runs[("sls", site)]
    errors = run.result if isinstance(run.result, list) else []
    mine = [e for e in errors if any(f"SLS 'base:{sls}'" in str(e) for sls in files)]
    assert not mine, "\n\n".join(str(e)[:3000] for e in mine)
    if not run.rendered:
        pytest.skip("other files of this site failed to render, so Salt returned no states to check")
    rendered = {state["__sls__"] for state in run.result.values()} & set(files)
    overlays = SITES[site][0]
    if formula in ONLY_WITH and ONLY_WITH[formula] not in overlays:
        assert not rendered, f"{formula} has states on a site without {ONLY_WITH[formula]}"
    else:
        assert rendered


REQUISITES = ("require", "watch", "onchanges", "onfail", "prereq", "listen", "use",
              "require_in", "watch_in", "onchanges_in", "onfail_in", "prereq_in", "listen_in", "use_in")


def state_args(result: dict):
    """(state id, state module, argument dict) for every argument of every rendered state."""
    for state_id, body in result.items():
        for module, args in body.items():
            if not module.startswith("__"):
                yield from ((state_id, module, arg) for arg in args if isinstance(arg, dict))


@pytest.mark.parametrize("site", SITES)
def test_requisites_name_existing_states(runs, site):
    """A requisite on a state that is not there (renamed in another formula, say) fails only when
    highstate reaches it; checked here from the rendered data, without running anything."""
    run = runs[("sls", site)]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    sls_names = {body["__sls__"] for body in run.result.values()}
    known = {(module, state_id) for state_id, body in run.result.items() for module in body}
    known |= {(module, arg["name"]) for _, module, arg in state_args(run.result) if "name" in arg}
    dangling = []
    for state_id, _, arg in state_args(run.result):
        for kind in REQUISITES:
            for target in arg.get(kind, []):
                # `- file: some-id`, or a bare `- some-id` that matches any module
                (module, ref), = target.items() if isinstance(target, dict) else [(None, target)]
                if module == "sls":
                    found = ref in sls_names
                else:
                    found = any(r == ref and module in (None, m) for m, r in known)
                if not found:
                    dangling.append(f"{state_id}: {kind} {module}: {ref}")
    assert not dangling, "\n".join(dangling)


def arguments(run: SaltRun, state_id: str) -> dict:
    """A rendered state's arguments as one dict (Salt keeps them as a list of one-key dicts)."""
    (module,) = [m for m in run.result[state_id] if not m.startswith("__")]
    return {k: v for arg in run.result[state_id][module] if isinstance(arg, dict) for k, v in arg.items()}


def file_contents(run: SaltRun, state_id: str) -> str:
    return arguments(run, state_id)["contents"]


@pytest.mark.parametrize("site", ["all-in-one", "two-vos"])
def test_bridge_config_is_one_arkd_accepts(runs, site):
    """The rendered /etc/ark/bridge.yaml passes arkd's own loader and names the site's registry."""
    run = runs[("sls", site)]
    if "arc-bridge-config-managed" not in (run.result or {}):
        pytest.skip("the arc_bridge states did not render (see test_site_renders)")
    config = parse_config(yaml.safe_load(file_contents(run, "arc-bridge-config-managed")))
    assert config.vos["alpha"].registry == "10.213.0.2:5000/vo-alpha"
    assert config.vos["alpha"].users == ("arkuser",)
    assert set(config.queues) == ({"default", "long"} if site == "two-vos" else {"default"})


def test_registry_listens_only_behind_its_proxy(runs):
    """Debian's config listens on every address with broken accounts (htpasswd.path is a
    directory); ARK's serves a Unix socket only nginx's workers may open, and nginx does TLS,
    accounts and permissions."""
    run = runs[("sls", "registry")]
    if "registry-config-managed" not in (run.result or {}):
        pytest.skip("the registry states did not render (see test_site_renders)")
    config = yaml.safe_load(file_contents(run, "registry-config-managed"))
    assert config["http"] == {**config["http"], "net": "unix", "addr": "/run/ark-registry/registry.sock"}
    assert arguments(run, "registry-proxy-configured")["context"]["backend"] == config["http"]["addr"]
    dropin = file_contents(run, "registry-service-dropin-managed")
    assert "Group=ark-registry\n" in dropin and "UMask=0007\n" in dropin and "RuntimeDirectoryMode=0750\n" in dropin
    assert "auth" not in config and "tls" not in config["http"]
    assert config["storage"]["delete"] == {"enabled": True}


def test_registry_proxy_lets_each_vo_account_write_only_under_its_prefix(runs):
    run = runs[("nginx", "two-vos")]
    assert run.returncode == 0, run.output[-3000:]
    rules = [line.strip() for line in Path(run.result).read_text().splitlines() if line.strip().startswith('"~^')]
    assert rules == [
        '"~^ " 1;',
        '"~^\\S+ (GET|HEAD) /v2/" 1;',
        '"~^ark\\-admin \\S+ /v2/" 1;',
        '"~^alpha\\-manager (POST|PUT|PATCH|DELETE) /v2/vo-alpha/" 1;',
        '"~^beta\\-manager (POST|PUT|PATCH|DELETE) /v2/vo-beta/" 1;',
    ]


@pytest.mark.parametrize(("site", "holds_it"), [("ce", False), ("control-plane", True), ("all-in-one", True)])
def test_only_the_control_plane_holds_the_cluster_admin_credential(runs, site, holds_it):
    """The CE keeps arkd's own kubeconfig; the cluster's objects are applied from the control plane."""
    run = runs[("sls", site)]
    assert run.rendered, failures(run)
    admin_states = {"ark-kubeconfig-admin", "ark-pki-admin-cert", "arc-bridge-cluster-objects-applied",
                    "arc-bridge-vo-objects-applied"}
    assert (admin_states <= set(run.result)) == holds_it
    assert (admin_states & set(run.result) == set()) == (not holds_it)
    assert ("ark-admin-credential-absent" in run.result) == (not holds_it)
    assert ("arkd-service-running" in run.result) == (site != "control-plane")


def test_queues_pass_their_resource_policy_to_arkd(runs):
    run = runs[("sls", "two-vos")]
    assert run.rendered, failures(run)
    queues = yaml.safe_load(file_contents(run, "arc-bridge-config-managed"))["queues"]
    assert {k: queues["long"][k] for k in ("memory_limit_factor", "cpu_limit", "scratch_mb")} == {
        "memory_limit_factor": None, "cpu_limit": "request_only", "scratch_mb": 2048}
    assert queues["default"]["memory_limit_factor"] == 1.0 and queues["default"]["cpu_limit"] == "enforced"


def test_vo_objects_carry_quota_limits_and_pull_secret(runs):
    run = runs[("sls", "two-vos")]
    if "arc-bridge-vo-objects-managed" not in (run.result or {}):
        pytest.skip("the arc_bridge states did not render (see test_site_renders)")
    items = yaml.safe_load(file_contents(run, "arc-bridge-vo-objects-managed"))["items"]
    by_kind = {(i["kind"], i["metadata"]["namespace"]): i for i in items}
    assert by_kind[("ResourceQuota", "ark-alpha")]["spec"]["hard"] == {"cpu": "500m", "memory": "1536Mi", "pods": "20"}
    assert by_kind[("LimitRange", "ark-alpha")]["spec"]["limits"] == [
        {"type": "Container", "default": {"cpu": "250m", "memory": "256Mi"}, "max": {"cpu": "2", "memory": "4Gi"}}
    ]
    for namespace in ("ark-alpha", "ark-beta"):
        secret = by_kind[("Secret", namespace)]
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
        assert auths["10.213.0.2:5000"]["username"] == "ark-pull"
        assert base64.b64decode(auths["10.213.0.2:5000"]["auth"]) == b"ark-pull:change-me-pull"
        assert by_kind[("ServiceAccount", namespace)]["imagePullSecrets"] == [{"name": "ark-registry-pull"}]


def test_rte_scripts_are_valid_job_script_functions(runs):
    """A-REX pastes an RTE's script into the job script as a function body (submit_common.sh,
    RTE_to_jobscript), and a body of comments alone is a syntax error in every job that asks
    for the RTE. RTEs arkd carries out get ARK's script; those every VO maps to null are ARC's."""
    run = runs[("sls", "two-vos")]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    rtes = {state_id: arguments(run, state_id) for state_id in run.result if state_id.startswith("ark-arex-rte-")}
    scripts = {args["name"].removeprefix("/var/spool/arc/runtime/"): args["contents"]
               for args in rtes.values() if "contents" in args}
    assert set(scripts) == {"ENV/CONTAINER", "APPS/ALPHA/TOOLS-2"}
    for name, script in scripts.items():
        function = f"RTE_function_0 () {{\n{script}}}\nRTE_function_0 1 \"base:1\"\n"
        checked = subprocess.run(["dash", "-n"], input=function, capture_output=True, text=True)
        assert checked.returncode == 0, f"{name}: {checked.stderr}"
    links = {args["name"]: args["target"] for args in rtes.values() if "target" in args}
    assert links["/var/spool/arc/jobstatus/rte/enabled/ENV/PROXY"] == "/usr/share/arc/rte/ENV/PROXY"
    assert links["/var/spool/arc/jobstatus/rte/enabled/ENV/CONTAINER"] == "/var/spool/arc/runtime/ENV/CONTAINER"


@pytest.mark.parametrize(("pillar", "key"), BAD_PILLARS.items(), ids=list(BAD_PILLARS))
def test_bad_pillar_fails_naming_the_key(runs, pillar, key):
    assert_stopped(runs[("bad", pillar)], key)


def test_bad_pillar_stops_the_whole_highstate(runs):
    assert_stopped(runs[("bad-highstate", HIGHSTATE_BAD)], BAD_PILLARS[HIGHSTATE_BAD])


def assert_stopped(run: SaltRun, key: str) -> None:
    assert run.returncode != 0
    # A list of render errors instead of state results: highstate ran no state at all.
    assert isinstance(run.result, list), f"highstate ran states with a bad pillar:\n{run.output[-3000:]}"
    assert f"pillar ark:{key}:" in run.output, failures(run)


def test_names_of_one_address_share_one_hosts_line(runs):
    """host.only makes an address's line hold exactly its names, so names of one address must
    come in one state, or two states would take turns rewriting the line."""
    run = runs[("sls", "two-vos")]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    hosts = {state_id: arg for state_id, module, arg in state_args(run.result) if module == "host" and "hostnames" in arg}
    assert hosts == {"ark-hosts-10.213.0.2-present": {"hostnames": ["ark-node-1", "registry.example.org"]}}


def unit_argv(run: SaltRun, unit: str) -> list[str]:
    args = run.result[f"ark-{unit}-unit"]["file"]
    return next(arg["context"]["argv"] for arg in args if isinstance(arg, dict) and "context" in arg)


@pytest.mark.parametrize(("site", "version"), [("all-in-one", "1.20.2"), ("upstream-release", "1.31.4")])
def test_flags_follow_the_kubernetes_release(runs, site, version):
    """1.20 needs --port=0 (its insecure port) and --container-runtime=remote (dockershim is its
    default), and holds pods to a PodSecurityPolicy; 1.24, 1.27 and 1.25 removed those, and a
    binary refuses a flag or plugin it does not know. The scheduler's configuration file names
    the API version its release reads, and before 1.23 binds the plain-HTTP port to loopback
    (a configuration file overrides --port=0; 1.23 refuses the fields)."""
    run = runs[("sls", site)]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    assert any(f"/kubernetes/{version}/kubelet" in str(arg.get("source")) for _, _, arg in state_args(run.result))
    old = version == "1.20.2"
    assert ("--port=0" in unit_argv(run, "kube-controller-manager")) == old
    assert unit_argv(run, "kube-scheduler")[1:] == ["--config=/etc/ark/kubernetes/scheduler.yaml", "--bind-address=127.0.0.1"]
    scheduler = yaml.safe_load(file_contents(run, "ark-kube-scheduler-configured"))
    assert scheduler["apiVersion"] == "kubescheduler.config.k8s.io/" + ("v1beta1" if old else "v1")
    assert (scheduler["leaderElection"], scheduler["podMaxBackoffSeconds"]) == ({"leaderElect": False}, 1)
    plain_http = {key: scheduler.get(key) for key in ("healthzBindAddress", "metricsBindAddress")}
    assert plain_http == dict.fromkeys(plain_http, "127.0.0.1:10251" if old else None)
    assert ("--container-runtime=remote" in unit_argv(run, "kubelet")) == old
    plugins = "NodeRestriction,PodSecurityPolicy" if old else "NodeRestriction"
    assert f"--enable-admission-plugins={plugins}" in unit_argv(run, "kube-apiserver")


APT_KEYRING = "/etc/apt/keyrings/ark-site.asc"
APT_SOURCES = "/etc/apt/ark/ark-site.sources"
APT_SOURCES_CONF = "/etc/apt/apt.conf.d/01ark-sources"


def test_apt_repository_is_the_only_package_source(runs, tmp_path):
    """With ark:apt:repository the host's apt reads the site repository (flat, signed by the
    pillar's key) and nothing else; checked with apt itself: the URIs an update would fetch."""
    run = runs[("sls", "apt-repository")]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    pillar = yaml.safe_load((Path(__file__).parent / "pillar" / "apt_repository.sls").read_text())
    key = arguments(run, "ark-apt-repository-key")
    assert (key["name"], key["contents"]) == (APT_KEYRING, pillar["ark"]["apt"]["repository"]["key"])
    source = arguments(run, "ark-apt-repository-source")
    assert source["name"] == APT_SOURCES
    assert arguments(run, "ark-apt-sources-configured")["name"] == APT_SOURCES_CONF
    conf = tmp_path / "01ark-sources"
    conf.write_text(file_contents(run, "ark-apt-sources-configured"))
    settings = subprocess.run(["apt-config", "-c", str(conf), "shell", "LIST", "Dir::Etc::sourcelist",
                               "PARTS", "Dir::Etc::sourceparts"], capture_output=True, text=True, check=True).stdout
    assert settings.split() == [f"LIST='{APT_SOURCES}'", "PARTS='/dev/null'"]
    # The rendered source, read by apt as the conf file makes it read it.
    sources = tmp_path / "ark-site.sources"
    sources.write_text(source["contents"])
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    uris = subprocess.run(["apt-get", "-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=/dev/null",
                           "-o", f"Dir::State::lists={tmp_path / 'lists'}/", "--print-uris", "update"],
                          capture_output=True, text=True, check=True).stdout
    fetched = {line.split()[0].strip("'") for line in uris.splitlines()}
    assert fetched and all(uri.startswith("http://10.213.0.1:8080/ark-files/debian/./") for uri in fetched), fetched
    assert f"Signed-By: {APT_KEYRING}" in source["contents"].splitlines()
    # A change of sources refreshes the lists at once, and any failed source fails the state.
    update = arguments(run, "ark-apt-lists-updated")
    assert "APT::Update::Error-Mode=any" in update["name"]
    assert {"file": "ark-apt-sources-configured"} in update["onchanges"]


def test_without_apt_repository_the_host_keeps_its_sources(runs):
    run = runs[("sls", "all-in-one")]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    for state_id, path in (("ark-apt-sources-configured", APT_SOURCES_CONF), ("ark-apt-repository-key", APT_KEYRING),
                           ("ark-apt-repository-source", "/etc/apt/ark")):
        assert "absent" in run.result[state_id]["file"], state_id
        assert arguments(run, state_id)["name"] == path


def installed_packages(result: dict) -> set[str]:
    """The Debian packages the rendered pkg states install."""
    packages = set()
    for state_id, body in result.items():
        if "pkg" in body:
            args = {k: v for arg in body["pkg"] if isinstance(arg, dict) for k, v in arg.items()}
            packages |= set(args.get("pkgs") or [args.get("name", state_id)])
    return packages


@pytest.mark.parametrize("site", SITES)
def test_bundle_holds_every_package_the_states_install(runs, site):
    """ark bundle puts DEBIAN_PACKAGES (with all they need) in the site's repository, the only
    package source of a site that uses it: a pkg state naming another package would fail there."""
    run = runs[("sls", site)]
    if not run.rendered:
        pytest.skip("the site did not render (see test_site_renders)")
    installed = installed_packages(run.result)
    assert installed <= set(DEBIAN_PACKAGES), installed - set(DEBIAN_PACKAGES)
    if site == EVERY_PACKAGE_SITE:
        assert installed == set(DEBIAN_PACKAGES), "a package ark bundle carries that no state installs"
