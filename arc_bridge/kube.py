"""The only module that talks to Kubernetes. Objects cross this boundary as plain JSON dicts."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .translate import ANN_CANCELLED, SELECTOR


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


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

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create the Job; None if one of that name exists already (a repeated submit)."""
        ns = manifest["metadata"]["namespace"]
        try:
            return self._json(self.batch.create_namespaced_job(ns, manifest, _preload_content=False))
        except ApiException as e:
            if e.status == 409:
                return None
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def cancel_job(self, namespace: str, name: str) -> None:
        """Mark the Job cancelled, then delete it and its pod; the watch sees it go."""
        patch = {"metadata": {"annotations": {ANN_CANCELLED: "true"}}}
        try:
            self.batch.patch_namespaced_job(name, namespace, patch)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        self.delete_job(namespace, name)

    def delete_job(self, namespace: str, name: str) -> None:
        # Foreground: the Job object outlives its pod, so its DELETED event means the pod is gone.
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        try:
            self.batch.delete_namespaced_job(name, namespace, body=body)
        except ApiException as e:
            if e.status != 404:
                raise

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
        return self._json(self.core.list_node(_preload_content=False))["items"]

    def _lister(self, kind: str):
        return {
            "jobs": self.batch.list_job_for_all_namespaces,
            "pods": self.core.list_pod_for_all_namespaces,
        }[kind]

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data)
