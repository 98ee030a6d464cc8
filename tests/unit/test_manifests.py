"""The cluster objects a bridge configuration asks for: who may do what, and what pods may be."""

from arc_bridge.config import parse_config
from arc_bridge.manifests import POD_SECURITY_POLICY, cluster_objects


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_arkd_writes_jobs_only_in_vo_namespaces_and_reads_them_everywhere(config):
    objects = cluster_objects(config, "arkd")
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in by_kind(objects, "Role")}
    assert set(roles) == {("ark-alpha", "arkd"), ("ark-beta", "arkd")}
    assert roles[("ark-alpha", "arkd")]["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "patch", "delete"]},
        # The infosys's free slots of the VO: its quota, read only.
        {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get"], "resourceNames": ["ark-quota"]}]
    (watch,) = by_kind(objects, "ClusterRole")[:1]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in watch["rules"])


def test_the_pod_security_policy_admits_only_unprivileged_non_root_pods(config):
    (policy,) = by_kind(cluster_objects(config, "arkd"), "PodSecurityPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["name"] == POD_SECURITY_POLICY
    assert spec["privileged"] is False and spec["allowPrivilegeEscalation"] is False
    assert spec["requiredDropCapabilities"] == ["ALL"] and "allowedCapabilities" not in spec
    assert not (spec["hostNetwork"] or spec["hostIPC"] or spec["hostPID"]) and "hostPorts" not in spec
    assert spec["runAsUser"] == {"rule": "MustRunAsNonRoot"}
    assert spec["runAsGroup"]["rule"] == "MustRunAs" and spec["runAsGroup"]["ranges"][0]["min"] == 1
    assert policy["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/allowedProfileNames"] == \
        "runtime/default"


def test_a_pod_may_mount_of_the_node_only_the_session_roots(config, raw_config):
    (policy,) = by_kind(cluster_objects(config, "arkd"), "PodSecurityPolicy")
    assert "hostPath" in policy["spec"]["volumes"]
    assert policy["spec"]["allowedHostPaths"] == [{"pathPrefix": "/var/spool/arc/sessiondir"}]

    raw_config["session_volume"] = {"type": "persistentVolumeClaim", "claim_name": "sessions"}
    (policy,) = by_kind(cluster_objects(parse_config(raw_config), "arkd"), "PodSecurityPolicy")
    assert "hostPath" not in policy["spec"]["volumes"] and "allowedHostPaths" not in policy["spec"]
    assert "persistentVolumeClaim" in policy["spec"]["volumes"]


def test_vo_mounts_are_admitted_read_only_whatever_the_session_mode(raw_config):
    raw_config["vos"]["alpha"]["mounts"] = ["/cvmfs", "/srv/software"]
    raw_config["vos"]["beta"]["mounts"] = ["/cvmfs"]
    (policy,) = by_kind(cluster_objects(parse_config(raw_config), "arkd"), "PodSecurityPolicy")
    assert policy["spec"]["allowedHostPaths"] == [{"pathPrefix": "/var/spool/arc/sessiondir"},
                                                  {"pathPrefix": "/cvmfs", "readOnly": True},
                                                  {"pathPrefix": "/srv/software", "readOnly": True}]
    raw_config["session_volume"] = {"type": "persistentVolumeClaim", "claim_name": "sessions"}
    (policy,) = by_kind(cluster_objects(parse_config(raw_config), "arkd"), "PodSecurityPolicy")
    assert "hostPath" in policy["spec"]["volumes"]
    assert [p["pathPrefix"] for p in policy["spec"]["allowedHostPaths"]] == ["/cvmfs", "/srv/software"]


def test_only_the_service_accounts_of_vo_namespaces_may_use_the_policy(config):
    objects = cluster_objects(config, "arkd")
    (use,) = [o for o in by_kind(objects, "ClusterRole") if o["metadata"]["name"] == POD_SECURITY_POLICY]
    assert use["rules"] == [{"apiGroups": ["policy"], "resources": ["podsecuritypolicies"], "verbs": ["use"],
                             "resourceNames": [POD_SECURITY_POLICY]}]
    bindings = [o for o in by_kind(objects, "RoleBinding") if o["roleRef"]["name"] == POD_SECURITY_POLICY]
    assert {(b["metadata"]["namespace"], s["kind"], s["name"]) for b in bindings for s in b["subjects"]} == {
        ("ark-alpha", "Group", "system:serviceaccounts:ark-alpha"),
        ("ark-beta", "Group", "system:serviceaccounts:ark-beta"),
    }
    assert not any(o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == POD_SECURITY_POLICY for o in objects)


def test_priority_classes_never_preempt_a_running_job(config):
    classes = by_kind(cluster_objects(config, "arkd"), "PriorityClass")
    assert {c["metadata"]["name"] for c in classes} == set(config.priority_classes)
    assert all(c["preemptionPolicy"] == "Never" and c["globalDefault"] is False for c in classes)
