"""watch=true through kubernetes.watch.Watch."""

from __future__ import annotations

import threading

import pytest
from kubernetes import watch
from kubernetes.client.rest import ApiException

from .conftest import GW, NS


def test_watch_initial_state_then_changes(core, lab):
    w = watch.Watch()
    seen = []

    def writer():
        lab.store.update_status("Pod", "echo", "echo-2", {"phase": "Running"})
        lab.store.delete("Pod", "echo", "echo-1")

    for ev in w.stream(core.list_namespaced_pod, "echo", timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].status.phase))
        if len(seen) == 2:
            threading.Thread(target=writer).start()
        if len(seen) == 4:
            w.stop()
    assert seen == [
        ("ADDED", "echo-1", "Running"),
        ("ADDED", "echo-2", "Pending"),
        ("MODIFIED", "echo-2", "Running"),
        ("DELETED", "echo-1", "Running"),
    ]


def test_watch_from_resource_version_with_selector(core, lab):
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    pod = f"{GW}-7d9f8b-abcde"
    lab.store.patch("Pod", NS, pod, {"metadata": {"labels": {"tier": "other"}}})  # leaves the selection
    lab.store.patch("Pod", NS, pod, {"metadata": {"labels": {"tier": "edge"}}})   # comes back
    lab.store.patch("Pod", "echo", "echo-1", {"metadata": {"labels": {"tier": "edge"}}})  # other namespace
    events = [
        (e["type"], e["raw_object"]["metadata"]["labels"]["tier"])
        for e in watch.Watch().stream(core.list_namespaced_pod, NS, label_selector="tier=edge",
                                      resource_version=rv, timeout_seconds=1)
    ]
    assert events == [("DELETED", "other"), ("ADDED", "edge")]


def test_watch_custom_objects_and_too_old(custom, lab):
    rv = lab.store.resource_version
    lab.store.patch("EnvoyFilter", NS, "proxy-protocol", {"metadata": {"annotations": {"a": "b"}}})
    events = list(watch.Watch().stream(custom.list_namespaced_custom_object, "networking.istio.io", "v1alpha3",
                                       NS, "envoyfilters", resource_version=rv, timeout_seconds=1))
    assert [(e["type"], e["object"]["apiVersion"]) for e in events] == [("MODIFIED", "networking.istio.io/v1alpha3")]
    lab.store._history.clear()  # simulate compaction
    lab.store.patch("EnvoyFilter", NS, "proxy-protocol", {"metadata": {"annotations": {"a": "c"}}})
    with pytest.raises(ApiException) as ei:
        list(watch.Watch().stream(custom.list_namespaced_custom_object, "networking.istio.io", "v1",
                                  NS, "envoyfilters", resource_version="1", timeout_seconds=1))
    assert ei.value.status == 410
