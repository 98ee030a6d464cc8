"""The cluster objects a bridge configuration needs, as plain manifests. Pure: config in, dicts out.

Namespaces and PriorityClasses for the jobs; RBAC that lets arkd read its Jobs and pods anywhere
but write only in VO namespaces; and a PodSecurityPolicy that is the only one pods of a VO
namespace may use, so whoever holds arkd's credentials still cannot start a privileged pod, a
root pod, or one that mounts more of a node than the session roots.
"""

from typing import Any

from .config import Config
from .translate import LABEL_VO

RBAC = "rbac.authorization.k8s.io/v1"
POD_SECURITY_POLICY = "ark-restricted"
# Each VO namespace's ResourceQuota, as salt/arc_bridge/deployed.sls names it; arkd reads it for the infosys.
QUOTA_NAME = "ark-quota"
# Any uid or gid but root's.
NOT_ROOT = [{"min": 1, "max": 2147483647}]
# What a job's pod may mount: nothing of the node but the session roots (hostPath mode), and
# the kinds of volume that carry no node access of their own.
SAFE_VOLUMES = ["configMap", "downwardAPI", "emptyDir", "persistentVolumeClaim", "projected", "secret"]


def cluster_objects(config: Config, user: str) -> list[dict[str, Any]]:
    return [*namespaces(config), *priority_classes(config), *rbac(config, user), *pod_security(config)]


def namespaces(config: Config) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": vo.namespace, "labels": {LABEL_VO: vo.name}}}
            for vo in config.vos.values()]


def priority_classes(config: Config) -> list[dict[str, Any]]:
    """A job's priority orders the queue of pending pods and never evicts a running one, as ARC's
    own backends only rank jobs: with preemption, one VO's urgent jobs would kill another's."""
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
             "value": 1000 + low, "globalDefault": False, "preemptionPolicy": "Never",
             "description": f"ARC jobs with priority {low} and above"}
            for name, low in config.priority_classes.items()]


def rbac(config: Config, user: str) -> list[dict[str, Any]]:
    """arkd reads its Jobs and pods everywhere (one watch each) but writes only in VO namespaces."""
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    docs: list[dict[str, Any]] = [
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "arkd-watch"},
         "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]},
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "arkd-watch"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "arkd-watch"},
         "subjects": subject},
    ]
    for vo in config.vos.values():
        meta = {"name": "arkd", "namespace": vo.namespace}
        docs.append({"apiVersion": RBAC, "kind": "Role", "metadata": meta,
                     "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "patch", "delete"]},
                               {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get"],
                                "resourceNames": [QUOTA_NAME]}]})
        docs.append({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": meta,
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "arkd"},
                     "subjects": subject})
    return docs


def pod_security(config: Config) -> list[dict[str, Any]]:
    """The policy, and the right to use it for the service accounts of the VO namespaces only.

    The Job controller creates the pods; the admission plugin lets a pod use a policy that either
    the controller or the pod's service account may use, and only the latter is granted. A pod in
    any other namespace matches no policy and is refused. Pods that leave out a group, the
    seccomp profile or the dropped capabilities get this policy's defaults.
    """
    volumes = list(SAFE_VOLUMES)
    spec: dict[str, Any] = {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "defaultAllowPrivilegeEscalation": False,
        "requiredDropCapabilities": ["ALL"],
        "hostNetwork": False,
        "hostIPC": False,
        "hostPID": False,
        "runAsUser": {"rule": "MustRunAsNonRoot"},
        "runAsGroup": {"rule": "MustRunAs", "ranges": NOT_ROOT},
        "supplementalGroups": {"rule": "MayRunAs", "ranges": NOT_ROOT},
        "fsGroup": {"rule": "MayRunAs", "ranges": NOT_ROOT},
        "seLinux": {"rule": "RunAsAny"},
    }
    host_paths = []
    if config.session_volume.type == "hostPath":
        # Matched per path component: /var/spool/arc/sessiondir admits .../sessiondir/ID.diag, not .../sessiondirX.
        host_paths = [{"pathPrefix": str(root)} for root in config.session_roots]
    host_paths += [{"pathPrefix": str(path), "readOnly": True}
                   for path in sorted({m for vo in config.vos.values() for m in vo.mounts})]
    if host_paths:
        volumes.append("hostPath")
        spec["allowedHostPaths"] = host_paths
    spec["volumes"] = sorted(volumes)
    seccomp = "seccomp.security.alpha.kubernetes.io"
    docs: list[dict[str, Any]] = [
        {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
         "metadata": {"name": POD_SECURITY_POLICY,
                      "annotations": {f"{seccomp}/allowedProfileNames": "runtime/default",
                                      f"{seccomp}/defaultProfileName": "runtime/default"}},
         "spec": spec},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": POD_SECURITY_POLICY},
         "rules": [{"apiGroups": ["policy"], "resources": ["podsecuritypolicies"], "verbs": ["use"],
                    "resourceNames": [POD_SECURITY_POLICY]}]},
    ]
    for vo in config.vos.values():
        docs.append({"apiVersion": RBAC, "kind": "RoleBinding",
                     "metadata": {"name": POD_SECURITY_POLICY, "namespace": vo.namespace},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": POD_SECURITY_POLICY},
                     "subjects": [{"kind": "Group", "name": f"system:serviceaccounts:{vo.namespace}",
                                   "apiGroup": "rbac.authorization.k8s.io"}]})
    return docs
