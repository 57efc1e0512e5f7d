"""Discovery and least privilege against the running lab (real moto, lab API, Envoy, NLB emulators).

- ``discover --json`` with only a kubeconfig, the AWS endpoint and the lab's resolver map lists both
  gateways (Helm and Gateway API) and both listener ports (80, 443) of the first NLB, whose ARN and
  DNS name have AWS's NLB shapes.
- Headless commands with several paths and no choice exit 2 listing them; ``--write`` saves one.
- Every AWS action (a botocore hook in this process) and every Kubernetes verb/resource (the lab
  API's request log) that discovery, ``probe --all``, ``fix --all`` and ``fix --rollback`` use is in
  the policy ``ppdoctor permissions --with-fixes`` prints.
"""

from __future__ import annotations

import json

import pytest
import yaml

from ppdoctor.cli import main
from ppdoctor.config import load_config
from ppdoctor.discovery.target import is_complete

from .zeroconfig import minimal_config

pytestmark = pytest.mark.lab


def test_discover_lists_both_gateways_and_both_listener_ports(lab_pool, tmp_path, capsys):
    lab = lab_pool.get("healthy")
    cfg_file = minimal_config(lab.config, tmp_path / "min.toml")
    assert main(["--config", str(cfg_file), "discover", "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)["paths"]
    got = {(p["gateway"]["kind"], p["gateway"]["namespace"], p["gateway"]["name"], p["port"]) for p in paths}
    assert got == {("Deployment", "istio-system", "istio-ingressgateway", 80),
                   ("Deployment", "istio-system", "istio-ingressgateway", 443),
                   ("Gateway", "istio-system", "public-gw", 80)}
    first = [p for p in paths if p["gateway"]["name"] == "istio-ingressgateway"]
    assert {p["nlb"]["arn"] for p in first} == {lab.config.nlb.arn}
    assert len({p["target_group_arn"] for p in first}) == 2
    for p in paths:
        assert ":loadbalancer/net/" in p["nlb"]["arn"]
        assert p["nlb"]["dns_name"].endswith(".elb.us-east-1.amazonaws.com")
        assert p["pods"] and p["deployment"]
    gw = next(p for p in paths if p["gateway"]["kind"] == "Gateway")
    assert gw["service"] == "istio-system/public-gw-istio" and gw["deployment"] == "istio-system/public-gw-istio"


def test_several_paths_without_a_choice_exit_2_listing_them(lab_pool, tmp_path, capsys):
    lab = lab_pool.get("healthy")
    cfg_file = minimal_config(lab.config, tmp_path / "min.toml")
    assert main(["--config", str(cfg_file), "diagnose", "--json"]) == 2
    err = capsys.readouterr().err
    assert "3 client-IP paths found" in err
    assert "--gateway istio-system/public-gw --port 80" in err
    assert "--gateway istio-system/istio-ingressgateway --port 443" in err


def test_discover_write_saves_a_complete_config(lab_pool, tmp_path, capsys):
    lab = lab_pool.get("healthy")
    cfg_file = minimal_config(lab.config, tmp_path / "min.toml")
    out = tmp_path / "chosen.toml"
    assert main(["--config", str(cfg_file), "discover", "--write", str(out),
                 "--gateway", "istio-system/public-gw", "--port", "80"]) == 0
    written = load_config(out, env={})
    assert is_complete(written)
    assert written.kubernetes.gateway_service == "public-gw-istio"
    assert written.nlb.address == next(e.split("=", 1)[1] for e in lab.config.resolver.endpoints
                                       if e.startswith("istio-gwapi-nlb-"))


def test_services_carry_aws_hostnames(lab_pool):
    lab = lab_pool.get("healthy")
    from kubernetes import client

    api = client.CoreV1Api(lab.kube())
    for name in ("istio-ingressgateway", "public-gw-istio"):
        svc = api.read_namespaced_service(name, "istio-system")
        [ingress] = svc.status.load_balancer.ingress
        assert ingress.hostname.endswith(".elb.us-east-1.amazonaws.com")
    lbs = lab.elbv2().describe_load_balancers()["LoadBalancers"]
    assert all(":loadbalancer/net/" in lb["LoadBalancerArn"] and lb["Type"] == "network" for lb in lbs)


def _record_aws(monkeypatch) -> set[str]:
    """Every AWS API call this process makes, as IAM actions (signing name : operation)."""
    import botocore.client

    seen: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):  # noqa: ANN001
        seen.add(f"{self.meta.service_model.signing_name}:{operation_name}")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return seen


def test_every_call_is_in_the_printed_policy(lab_pool, tmp_path, capsys, monkeypatch):
    lab = lab_pool.get("tg-pp-on-gateway-off", fresh=True)
    aws_calls = _record_aws(monkeypatch)
    cfg = str(lab.endpoints["config"])
    minimal = str(minimal_config(lab.config, tmp_path / "min.toml"))
    assert main(["--config", minimal, "discover", "--json"]) == 0
    main(["--config", cfg, "probe", "--all", "--json"])
    # discovered config: the gateway is reached by port-forward through the API
    main(["--config", minimal, "probe", "--all", "--json", "--gateway", "istio-system/istio-ingressgateway", "--port", "80"])
    assert main(["--config", cfg, "fix", "--all", "--yes", "--json"]) == 0
    main(["--config", cfg, "fix", "--rollback", "--yes", "--json"])
    state_dir = lab.state_dir
    lab_pool.close()  # the lab writes its API request log when it stops
    capsys.readouterr()

    assert main(["permissions", "--aws", "--with-fixes"]) == 0
    policy = json.loads(capsys.readouterr().out)
    allowed = {a for st in policy["Statement"] for a in st["Action"]}
    assert aws_calls, "no AWS call recorded"
    assert aws_calls <= allowed, sorted(aws_calls - allowed)

    assert main(["permissions", "--kube", "--with-fixes"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    records = json.loads((state_dir / "kube-requests.json").read_text())
    used = set()
    for rec in records:
        if not rec["verb"] or not rec["resource"]:
            continue  # discovery documents (/api, /apis, /version)
        group = rec["path"].split("/")[2] if rec["path"].startswith("/apis/") else ""
        used.add((group, rec["resource"], rec["verb"]))
    assert ("", "services", "list") in used and ("", "pods/portforward", "get") in used, used
    assert any(v == "patch" for _, _, v in used), used  # the fixes were recorded too
    assert used <= granted, sorted(used - granted)
