"""The permission table covers every AWS operation and Kubernetes verb/resource named in ppdoctor's source.

A static complement to the recorded run in test_discovery_lab.py (which exercises one scenario's fixes):
every ``aws_call("svc", "operation")``, every fix payload ``"operation"``, every ``kube_call(api, method,
verb, resource)`` and every fix payload ``"verb"/"resource"`` must have a row, and the printed policy
and ClusterRole must hold it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ppdoctor.probes.permissions import (AWS_ACTIONS, aws_permission, iam_policy, kube_permission, kube_rbac,
                                         kube_rbac_yaml)

ROOT = Path(__file__).resolve().parents[2] / "ppdoctor"
SOURCES = {p: p.read_text(encoding="utf-8") for p in ROOT.rglob("*.py") if "lab" not in p.parts}


def _matches(pattern: str) -> set[str]:
    return {m for text in SOURCES.values() for m in re.findall(pattern, text)}


def test_every_aws_operation_has_an_iam_action_in_the_policy():
    operations = _matches(r'aws_call\(\s*"[a-z0-9]+",\s*"([a-z_0-9]+)"') | _matches(r'"operation": "([a-z_0-9]+)"')
    operations.discard("operation")  # discovery pages through operations it names itself
    assert {"describe_load_balancers", "modify_target_group_attributes"} <= operations
    missing = {op for op in operations if op not in AWS_ACTIONS}
    assert missing == set()
    allowed = {a for st in iam_policy(with_fixes=True)["Statement"] for a in st["Action"]}
    assert {AWS_ACTIONS[op] for op in operations} <= allowed
    read_only = {a for st in iam_policy()["Statement"] for a in st["Action"]}
    assert not any(aws_permission(a).fix for a in read_only)


def test_every_kubernetes_verb_and_resource_is_granted():
    calls = set(re.findall(r'kube_call\(\s*"[A-Za-z0-9]+",\s*"[a-z_]+",\s*"([a-z]+)",\s*f?"([^"]+)"',
                           "\n".join(SOURCES.values())))
    calls |= set(re.findall(r'"verb": "([a-z]+)",\s*"resource": f?"([^"]+)"', "\n".join(SOURCES.values())))
    # f-strings in the discovery/gatewayapi modules name Gateway API resources
    calls = {(v, r.replace("{GATEWAYS}.{GATEWAY_API_GROUP}", "gateways.gateway.networking.k8s.io")
              .replace("{PLURAL}.{GROUP}", "gateways.gateway.networking.k8s.io")
              .replace("gateways.{GATEWAY_API_GROUP}", "gateways.gateway.networking.k8s.io"))
             for v, r in calls if "{plural}" not in r}
    assert ("patch", "deployments.apps") in calls and ("list", "services") in calls
    missing = {(v, r) for v, r in calls if kube_permission(v, r) is None}
    assert missing == set()
    role = kube_rbac(with_fixes=True)[0]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    for verb, resource in calls:
        plural, _, group = resource.partition(".")
        assert (group, plural, verb) in granted, (verb, resource)


def test_read_only_role_has_no_write_verb_and_the_yaml_parses():
    docs = list(yaml.safe_load_all(kube_rbac_yaml()))
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding"]
    verbs = {v for rule in docs[0]["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "create"}  # create: pods/portforward only
    creates = {r for rule in docs[0]["rules"] if "create" in rule["verbs"] for r in rule["resources"]}
    assert creates == {"pods/portforward"}
    json.dumps(iam_policy(with_fixes=True))
