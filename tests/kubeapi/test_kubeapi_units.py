"""Patch and selector semantics without a server."""

from __future__ import annotations

import pytest

from ppdoctor.lab.kubeapi.errors import forbidden_message
from ppdoctor.lab.kubeapi.patch import (
    PatchError,
    apply_patch,
    merge_patch,
    strategic_merge_patch,
)
from ppdoctor.lab.kubeapi.resources import Registry
from ppdoctor.lab.kubeapi.selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)


# RFC 7386 appendix A
@pytest.mark.parametrize(
    "target, patch, result",
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386(target, patch, result):
    assert merge_patch(target, patch) == result


def deployment():
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "gw", "namespace": "ns", "finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                 "template": {"metadata": {"annotations": {"k": "v"}}, "spec": {"containers": [
                     {"name": "proxy", "image": "p:1", "args": ["a", "b"],
                      "ports": [{"containerPort": 80}, {"containerPort": 443}],
                      "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                     {"name": "side", "image": "s:1"}],
                     "tolerations": [{"key": "t1"}]}}},
    }


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_strategic_merge_semantics():
    out = strategic_merge_patch(deployment(), {"spec": {"template": {"spec": {
        "containers": [{"name": "proxy", "args": ["c"], "env": [{"name": "B", "value": None}, {"name": "C", "value": "3"}],
                        "ports": [{"containerPort": 443, "name": "https"}]},
                       {"name": "new", "image": "n:1"}],
        "tolerations": [{"key": "t2"}]}}}}, "Deployment")
    proxy = containers(out)[0]
    assert [c["name"] for c in containers(out)] == ["proxy", "side", "new"]
    assert proxy["args"] == ["c"]  # no patch strategy: replaced
    assert proxy["env"] == [{"name": "A", "value": "1"}, {"name": "B"}, {"name": "C", "value": "3"}]
    assert proxy["ports"] == [{"containerPort": 80}, {"containerPort": 443, "name": "https"}]
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "t2"}]
    assert out["metadata"]["labels"] == {"x": "1"}


def test_strategic_merge_directives():
    d = deployment()
    out = strategic_merge_patch(d, {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}}}}, "Deployment")
    assert containers(out) == [{"name": "only", "image": "o:1"}]
    out = strategic_merge_patch(d, {"spec": {"template": {"metadata": {"$patch": "replace", "labels": {"n": "1"}}}}}, "Deployment")
    assert out["spec"]["template"]["metadata"] == {"labels": {"n": "1"}}
    out = strategic_merge_patch(d, {"spec": {"strategy": {"$patch": "delete"}}}, "Deployment")
    assert "strategy" not in out["spec"]
    out = strategic_merge_patch(d, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = strategic_merge_patch(d, {"metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["b"]
    out = strategic_merge_patch(d, {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "proxy"}]}}}}, "Deployment")
    assert [c["name"] for c in containers(out)] == ["side", "proxy"]
    with pytest.raises(PatchError):
        strategic_merge_patch(d, {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}, "Deployment")
    assert d == deployment()  # never mutated


def test_service_ports_merge_by_port():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 15021}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 15021, "nodePort": 31000}]}}, "Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 15021, "nodePort": 31000}]


def test_json_patch_and_dispatch():
    d = deployment()
    out = apply_patch(d, [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "p:2"}], "application/json-patch+json", "Deployment")
    assert containers(out)[0]["image"] == "p:2"
    with pytest.raises(PatchError) as ei:
        apply_patch(d, {"not": "a list"}, "application/json-patch+json", "Deployment")
    assert ei.value.code == 400
    with pytest.raises(PatchError) as ei:
        apply_patch(d, [{"op": "remove", "path": "/nope"}], "application/json-patch+json", "Deployment")
    assert ei.value.code == 422
    assert apply_patch({"a": {"b": 1}}, {"a": {"c": 2}}, "merge", "ConfigMap") == {"a": {"b": 1, "c": 2}}


def test_label_selector_parsing():
    reqs = parse_label_selector("a=b, c!=d,e in (f, g),h notin (i),j,!k,l>3")
    labels = {"a": "b", "e": "g", "j": "", "l": "4"}
    assert labels_match(reqs, labels)
    assert not labels_match(reqs, {**labels, "k": "x"})
    assert not labels_match(reqs, {**labels, "l": "2"})
    assert labels_match(parse_label_selector("app.kubernetes.io/name=istio"), {"app.kubernetes.io/name": "istio"})
    assert parse_label_selector("") == []
    for bad in ("a in (", "a=b=c", "=x", "a in ()", "a==b c", "Bad Key=x"):
        with pytest.raises(SelectorError):
            parse_label_selector(bad)


def test_field_selector_parsing():
    reqs = parse_field_selector("metadata.name==a,status.phase!=Failed")
    assert [(r.path, r.op, r.value) for r in reqs] == [("metadata.name", "=", "a"), ("status.phase", "!=", "Failed")]
    with pytest.raises(SelectorError):
        parse_field_selector("spec.x=1", lambda p: p.startswith("metadata."))


def test_registry_resolution():
    reg = Registry()
    for ref in ("Deployment", "deployments", "deploy", "deployments.apps", "apps/v1/Deployment", "apps/v1/deployments", ("apps", "v1", "Deployment")):
        assert reg.resolve(ref).kind == "Deployment"
    assert reg.resolve("v1/Pod").plural == "pods"
    assert reg.resolve("networking.istio.io/v1alpha3/EnvoyFilter").plural == "envoyfilters"
    assert reg.resolve("gw").kind == "Gateway"
    with pytest.raises(KeyError):
        reg.resolve("replicasets")


def test_forbidden_message_shapes():
    assert forbidden_message("get", "", "pods", "p", "ns", "u", "portforward") == (
        'pods "p" is forbidden: User "u" cannot get resource "pods/portforward" in API group "" in the namespace "ns"')
    assert forbidden_message("list", "", "namespaces", None, None, "u") == (
        'namespaces is forbidden: User "u" cannot list resource "namespaces" in API group "" at the cluster scope')


def test_store_without_server_lists_and_helpers():
    from ppdoctor.lab.kubeapi import Store, name_suffix, pod_template_hash

    store = Store([
        None,
        {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "x"}},
        ]},
    ])
    assert [(c["metadata"]["namespace"], c["metadata"]["name"]) for c in store.list("cm")] == [("default", "a"), ("x", "b")]
    assert store.get("Namespace", None, "x")["status"]["phase"] == "Active"
    tmpl = {"metadata": {"labels": {"app": "gw"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert pod_template_hash(tmpl) == pod_template_hash(dict(tmpl))
    assert pod_template_hash(tmpl) != pod_template_hash({**tmpl, "metadata": {"labels": {"app": "gw2"}}})
    assert len(name_suffix()) == 5
    events = []
    store.subscribe(lambda t, o, old: events.append(t))
    store.delete("Namespace", None, "x")  # cascades
    assert events == ["DELETED", "DELETED"] and store.list("cm", "x") == []
