"""The only module that talks to Kubernetes. Objects cross this boundary as plain JSON dicts.

Single calls (create, get, patch, delete) ride out an API server that is restarting or waiting
for etcd: they are retried with back-off for up to API_RETRY_SECONDS, so a job submitted
meanwhile is late rather than failed. The LRMS client waits longer than that (protocol.call).
"""

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .errors import KubernetesFailed
from .manifests import QUOTA_NAME
from .translate import ANN_CANCELLED, SELECTOR


log = logging.getLogger(__name__)
T = TypeVar("T")
# Rides out an API server restart followed by an etcd outage; within the client's wait (protocol).
API_RETRY_SECONDS = 180.0
# Answers of an API server that is starting, overloaded or without etcd: worth asking again.
TRANSIENT_STATUS = {429, 500, 502, 503, 504}

class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


def retrying(call: Callable[[], T], what: str, ready: Callable[[], bool] = lambda: True,
             seconds: float = API_RETRY_SECONDS) -> T:
    """call(), again after a growing pause while the API server is unreachable or answers with a
    transient error, until `seconds` have passed (then KubernetesFailed); other API errors at once.
    A restarted API server refuses everyone (403) until it has loaded its RBAC roles, so a 403 is
    retried while `ready` says the server is not ready yet, and is final once it is."""
    give_up = time.monotonic() + seconds
    pause = 0.5
    while True:
        try:
            return call()
        except ApiException as e:
            if e.status == 403 and ready():
                raise KubernetesFailed(f"{what}: Kubernetes refused arkd ({_detail(e)}); arkd's RBAC is "
                                       f"applied by highstate on the control plane") from None
            if e.status not in TRANSIENT_STATUS | {403}:
                raise
            problem = f"HTTP {e.status} {e.reason}"
        except (urllib3.exceptions.HTTPError, OSError) as e:
            problem = type(e).__name__
        if time.monotonic() + pause > give_up:
            raise KubernetesFailed(f"{what}: the Kubernetes API server did not answer within {seconds:.0f} s "
                                   f"({problem})") from None
        log.warning("%s: API server unavailable (%s); retrying in %.1f s", what, problem, pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def _detail(e: ApiException) -> str:
    try:
        message = json.loads(e.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"HTTP {e.status}: {message or e.reason}"[:300]


class Kube:
    def __init__(self, kubeconfig: Path | None):
        cfg = client.Configuration()
        if kubeconfig:
            config.load_kube_config(str(kubeconfig), client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
        self.api = client.ApiClient(cfg)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        # Every HTTP request arkd makes, a watch counting once: what an idle arkd costs the API
        # server (bench/scale). next() of a count is atomic, whichever thread asks.
        self._requests = itertools.count()
        self.requests = 0
        request = self.api.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests = next(self._requests) + 1
            return request(*args, **kwargs)

        self.api.request = counted  # type: ignore[method-assign]

    def ready(self) -> bool:
        """The API server says it is ready (/readyz, which every user may read once it is)."""
        try:
            _, status, _ = self.api.call_api("/readyz", "GET", auth_settings=["BearerToken"], _request_timeout=5)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return False
        return status == 200

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create the Job; None if one of that name exists already (a repeated submit)."""
        ns = manifest["metadata"]["namespace"]
        return self._read(lambda: self.batch.create_namespaced_job(ns, manifest, _preload_content=False),
                          f"creating Job {ns}/{manifest['metadata']['name']}", absent=409)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(lambda: self.batch.read_namespaced_job(name, namespace, _preload_content=False),
                          f"reading Job {namespace}/{name}")

    def cancel_job(self, namespace: str, name: str) -> None:
        self.stop_job(namespace, name, {ANN_CANCELLED: "true"})

    def stop_job(self, namespace: str, name: str, why: dict[str, str]) -> None:
        """Mark the Job with why it is stopped (annotations), then delete it and its pods; the
        watch sees it go once they have."""
        patch = {"metadata": {"annotations": why}}
        if self._call(lambda: self.batch.patch_namespaced_job(name, namespace, patch),
                      f"marking Job {namespace}/{name}") is not None:
            self.delete_job(namespace, name)

    def delete_job(self, namespace: str, name: str) -> None:
        # Foreground: the Job object outlives its pod, so its DELETED event means the pod is gone.
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        self._call(lambda: self.batch.delete_namespaced_job(name, namespace, body=body), f"deleting Job {namespace}/{name}")

    def list_objects(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        data = self._json(self._lister(kind)(label_selector=SELECTOR, _preload_content=False))
        return data["items"], data["metadata"]["resourceVersion"]

    def watch(self, kind: str, resource_version: str, timeout: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
        stream = watch.Watch().stream(
            self._lister(kind),
            label_selector=SELECTOR,
            resource_version=resource_version,
            timeout_seconds=timeout,
            allow_watch_bookmarks=True,
            # The server ends the watch after `timeout`; this bounds a connection that died
            # without closing, which would otherwise leave the cache silently stale.
            _request_timeout=timeout + 30,
        )
        try:
            for event in stream:
                obj = event["raw_object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                yield event["type"], obj
        except ApiException as e:
            if e.status == 410:
                raise Gone() from None
            raise

    def nodes(self) -> list[dict[str, Any]]:
        return self._read(lambda: self.core.list_node(_preload_content=False), "listing nodes")["items"]

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self._read(lambda: self.core.read_node(name, _preload_content=False), f"reading node {name}")

    def get_quota(self, namespace: str) -> dict[str, Any] | None:
        """The VO namespace's ResourceQuota (QUOTA_NAME, which Salt applies), None where it has none."""
        return self._read(lambda: self.core.read_namespaced_resource_quota(QUOTA_NAME, namespace, _preload_content=False),
                          f"reading ResourceQuota {namespace}/{QUOTA_NAME}")

    def _call(self, call: Callable[[], Any], what: str, absent: int = 404) -> Any:
        """`call`, waited for through an API server that is away or not ready yet (retrying); None
        where the server answers `absent` (the object is not there, or for a create, already is)."""
        try:
            return retrying(call, what, self.ready)
        except ApiException as e:
            if e.status == absent:
                return None
            raise

    def _read(self, call: Callable[[], Any], what: str, absent: int = 404) -> dict[str, Any] | None:
        """The object a call with _preload_content=False returns, as JSON; None as for _call."""
        response = self._call(call, what, absent)
        return None if response is None else self._json(response)

    def _lister(self, kind: str):
        return {
            "jobs": self.batch.list_job_for_all_namespaces,
            "pods": self.core.list_pod_for_all_namespaces,
        }[kind]

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data)
