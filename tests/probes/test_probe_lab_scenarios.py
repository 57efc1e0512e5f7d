"""Each probe against the lab scenario it is meant for: real moto, the lab API server, real Envoy, the NLB emulator.

Tests are grouped by scenario, in file order, so that each lab starts once (``lab_pool``
keeps the current one running). ``ppdoctor probe --all --json`` runs as a subprocess
against the ``healthy`` lab.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ppdoctor.config import Timeouts
from ppdoctor.lab.addresses import NLB_IP, TEST_NET_SOURCE
from ppdoctor.probes import PROBES, ProbeContext, run_probe, run_probes
from ppdoctor.probes.model import FailureClass as FC
from ppdoctor.probes.model import Status
from ppdoctor.probes.network import FORGED_XFF_NET

pytestmark = pytest.mark.lab

TIMEOUTS = Timeouts(connect=2.0, response=2.0, api=10.0, total=15.0)
PPDOCTOR = str(Path(sys.executable).with_name("ppdoctor"))


class Run:
    """The observations of one `probe --all` against a lab, with helpers to read them."""

    def __init__(self, observations, wall: float) -> None:
        self.by_name = {o.probe: o for o in observations}
        self.wall = wall
        for o in observations:
            assert o.error is None or o.error.get("kind") != "internal", o.as_dict()
            assert o.timings_ms["probe"] < TIMEOUTS.total * 1000, o.as_dict()

    def __getitem__(self, probe: str):
        return self.by_name[probe]

    def fact(self, probe: str, name: str):
        obs = self.by_name[probe]
        assert name in obs.facts, (name, obs.as_dict())
        return obs.facts[name].value


def probe_all(lab, names=None) -> Run:
    config = replace(lab.config, timeouts=TIMEOUTS)
    t0 = time.perf_counter()
    observations = asyncio.run(run_probes(config, names))
    return Run(observations, time.perf_counter() - t0)


# --- healthy ------------------------------------------------------------------------------


def test_healthy(lab_pool):
    lab = lab_pool.get("healthy")
    lab.wait_health("healthy")
    run = probe_all(lab)
    assert run.wall < 15, f"probe --all took {run.wall:.2f} s"  # a hang guard; the timing is in benchmarks/
    client = lab.config.nlb.client_source

    assert (run["tcp"].status, run["tcp"].failure_class) == (Status.OK, FC.OK)
    assert run.fact("tcp", "nlb.reachable") is True

    via = run["http-via-nlb"]
    assert (via.status, via.failure_class) == (Status.OK, FC.OK), via.as_dict()
    assert run.fact("http-via-nlb", "via_nlb.client_ip") == client
    assert run.fact("http-via-nlb", "via_nlb.client_ip_class") == "prober"

    # the gateway requires PROXY protocol: plain is cut off, PPv2/PPv1/LOCAL are served
    assert run["direct-plain"].failure_class in (FC.RESET, FC.EMPTY_REPLY)
    assert run.fact("direct-ppv2", "gateway.honours_pp_source") is True
    assert run["direct-ppv1"].failure_class == FC.OK
    assert run["direct-local"].failure_class == FC.OK

    assert run.fact("xff-forge", "xff.spoofable") is False

    assert run["envoy"].status == Status.OK
    assert run.fact("envoy", "gateway.pp_live") is True
    assert run.fact("envoy", "gateway.pp_after_tls_inspector") is False
    assert run.fact("envoy", "gateway.status_pp") is False

    health = run["health"]
    assert (health.status, health.failure_class) == (Status.OK, FC.OK), health.as_dict()
    assert run.fact("health", "hc.would_pass") is True
    assert run.fact("health", "hc.sends_local_header") is True
    assert health.evidence["check"]["local_header"] is True
    assert health.evidence["results"][0]["sent_hex"] == "0d0a0d0a000d0a515549540a" + "20" + "00" + "0000"

    assert run["aws"].status == Status.OK
    assert run.fact("aws", "tg.pp_v2") is True
    assert run.fact("aws", "tg.healthy_count") == 1
    assert run["kube"].status == Status.OK
    assert run.fact("kube", "gateway.pp_configured") == ["pod-template annotation"]

    syn = run["syn"]
    if os.geteuid() == 0:  # root here: the raw SYN is sent and the NLB emulator's kernel socket answers
        assert syn.status == Status.OK, syn.as_dict()
        assert run.fact("syn", "syn.answer") == "nlb"
        assert syn.evidence["answer_from"] == NLB_IP
        assert "S" in syn.evidence["flags"] and "A" in syn.evidence["flags"]
    else:
        assert syn.status == Status.SKIPPED


def test_handshake_is_the_kernels_rtt_while_all_probes_share_the_loop(lab_pool):
    """With every probe running at once, the reported handshake is the kernel's TCP_INFO rtt (within 1 ms),
    and the evidence names the method; the loop's clock figure is kept beside it."""
    lab = lab_pool.get("healthy")
    run = probe_all(lab)
    tcp = run["tcp"]
    hs = tcp.evidence["handshake"]
    assert hs["method"] == "tcp_info-rtt" and run.fact("tcp", "nlb.handshake_method") == "tcp_info-rtt"
    assert hs["kernel_rtt_ms"] is not None and abs(tcp.timings_ms["connect"] - hs["kernel_rtt_ms"]) <= 1.0
    assert abs(run.fact("tcp", "nlb.handshake_ms") - hs["kernel_rtt_ms"]) <= 1.0
    assert "connect_clock" in tcp.timings_ms
    via = run["http-via-nlb"]
    assert via.evidence["connect_timing_method"] == "tcp_info-rtt"


def test_syn_without_privilege_is_skipped(lab_pool, monkeypatch):
    from ppdoctor.probes import syn

    lab = lab_pool.get("healthy")
    monkeypatch.setattr(syn, "_has_raw_socket_privilege", lambda: False)
    obs = asyncio.run(run_probe("syn", ProbeContext(lab.config)))
    assert obs.status == Status.SKIPPED
    assert "CAP_NET_RAW" in obs.summary
    assert obs.facts == {}


def test_cli_probe_all_json(lab_pool, tmp_path):
    lab = lab_pool.get("healthy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "KUBECONFIG"}
    t0 = time.perf_counter()
    proc = subprocess.run([PPDOCTOR, "--config", lab.endpoints["config"], "probe", "--all", "--json"],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert list(out) == ["observations"]
    observations = out["observations"]
    assert [o["probe"] for o in observations] == [n for n, p in PROBES.items() if not p.on_demand]
    assert not {"idle", "server-first"} & {o["probe"] for o in observations}  # on demand: they wait out timeouts
    for o in observations:
        assert {"probe", "status", "failure_class", "timings_ms", "facts", "evidence", "summary"} <= set(o), o
        assert o["status"] in ("ok", "fail", "skipped", "error")
        assert o["failure_class"] in (None, *(c.value for c in FC))
        assert isinstance(o["timings_ms"], dict) and o["timings_ms"]["probe"] > 0
        assert all(isinstance(v, (int, float)) for v in o["timings_ms"].values())
        for name, fact in o["facts"].items():
            assert set(fact) <= {"value", "source", "note"} and fact["source"] == o["probe"], (name, fact)
        assert isinstance(o["evidence"], dict)
    by = {o["probe"]: o for o in observations}
    assert by["http-via-nlb"]["facts"]["via_nlb.client_ip_class"]["value"] == "prober"
    assert by["direct-ppv2"]["evidence"]["proxy_header_hex"].startswith("0d0a0d0a000d0a515549540a21")
    assert by["aws"]["facts"]["tg.pp_v2"] == {"value": True, "source": "aws"}
    assert wall < 30, f"`ppdoctor probe --all --json` took {wall:.2f} s"  # a hang guard


# --- gateway requires PROXY, target group does not send it ---------------------------------


def test_gateway_pp_tg_off(lab_pool):
    lab = lab_pool.get("gateway-pp-tg-off")
    run = probe_all(lab, ["direct-plain", "direct-ppv2", "http-via-nlb", "envoy", "aws"])
    plain = run["direct-plain"]
    assert plain.status == Status.FAIL
    assert plain.failure_class in (FC.RESET, FC.EMPTY_REPLY), plain.as_dict()
    assert plain.evidence["received_total_bytes"] == 0
    ppv2 = run["direct-ppv2"]
    assert (ppv2.status, ppv2.failure_class) == (Status.OK, FC.OK), ppv2.as_dict()
    assert run.fact("direct-ppv2", "gateway.ppv2_status") == 200
    assert run.fact("direct-ppv2", "gateway.honours_pp_source") is True
    assert run.fact("direct-ppv2", "gateway.ppv2.xff") == TEST_NET_SOURCE
    assert run.fact("direct-ppv2", "gateway.ppv2.external_address") == TEST_NET_SOURCE
    assert ppv2.evidence["proxy_header_hex"].startswith("0d0a0d0a000d0a515549540a21")
    assert run["http-via-nlb"].failure_class in (FC.RESET, FC.EMPTY_REPLY)
    assert run.fact("envoy", "gateway.pp_live") is True
    assert run.fact("aws", "tg.pp_v2") is False


# --- target group sends PROXY, gateway does not expect it ----------------------------------


def test_tg_pp_on_gateway_off(lab_pool):
    lab = lab_pool.get("tg-pp-on-gateway-off")
    run = probe_all(lab, ["direct-plain", "direct-ppv2", "http-via-nlb", "envoy"])
    ppv2 = run["direct-ppv2"]
    assert (ppv2.status, ppv2.failure_class) == (Status.FAIL, FC.HTTP_4XX), ppv2.as_dict()
    assert run.fact("direct-ppv2", "gateway.ppv2_status") == 400
    plain = run["direct-plain"]
    assert (plain.status, plain.failure_class) == (Status.OK, FC.OK), plain.as_dict()
    via = run["http-via-nlb"]
    assert (via.status, via.failure_class) == (Status.FAIL, FC.HTTP_4XX), via.as_dict()
    assert run.fact("http-via-nlb", "via_nlb.status") == 400
    assert via.summary.startswith("HTTP 400")
    assert run.fact("envoy", "gateway.pp_live") is False


def test_plain_probe_at_the_gateway_tls_port(lab_pool):
    """Real Envoy's TLS listener given a plaintext GET: classified, not a crash or a hang."""
    lab = lab_pool.get("tg-pp-on-gateway-off")
    config = replace(lab.config, timeouts=TIMEOUTS,
                     gateway=replace(lab.config.gateway, direct=lab.endpoints["gateway_tls"]))
    t0 = time.perf_counter()
    obs = asyncio.run(run_probe("direct-plain", ProbeContext(config)))
    assert time.perf_counter() - t0 < 1.0
    assert obs.status == Status.FAIL
    assert obs.failure_class in (FC.EMPTY_REPLY, FC.RESET), obs.as_dict()


# --- the health check goes to the status port with a PROXY header ---------------------------


def test_pp_on_hc_status_port(lab_pool):
    lab = lab_pool.get("pp-on-hc-status-port")
    lab.wait_health("unhealthy")
    run = probe_all(lab, ["health", "aws"])
    health = run["health"]
    assert (health.status, health.failure_class) == (Status.FAIL, FC.HTTP_4XX), health.as_dict()
    assert run.fact("health", "hc.would_pass") is False
    assert run.fact("health", "hc.sends_local_header") is True
    result = health.evidence["results"][0]
    assert result["response"]["status"] == 400
    assert result["sent_hex"].startswith("0d0a0d0a000d0a515549540a20")  # LOCAL, as the NLB's checker sends it
    assert "HTTP 400" in health.summary
    aws = run["aws"]
    assert aws.status == Status.FAIL
    [target] = run.fact("aws", "tg.health")
    assert (target["state"], target["reason"]) == ("unhealthy", "Target.FailedHealthChecks")
    assert run.fact("aws", "hc.protocol") == "HTTP"
    assert "Target.FailedHealthChecks" in aws.summary


# --- preservation on, return path through a NAT gateway --------------------------------------


def test_preserve_on_nat(lab_pool):
    lab = lab_pool.get("preserve-on-nat")
    run = probe_all(lab, ["aws", "http-via-nlb", "tcp"])
    assert run.fact("aws", "routes.private_default") == "nat"
    assert run["aws"].facts["routes.private_default"].note.startswith("nat-")
    assert run.fact("aws", "tg.preserve_ip") is True
    assert run["aws"].facts["tg.preserve_ip"].note == "", "set explicitly, not a default"
    via = run["http-via-nlb"]
    assert (via.status, via.failure_class) == (Status.FAIL, FC.TIMEOUT_RESPONSE), via.as_dict()
    assert TIMEOUTS.response * 0.9 <= via.timings_ms["total"] / 1000 <= TIMEOUTS.total  # waited, within the deadline
    assert run["tcp"].status == Status.OK, "the handshake with the NLB itself completes"


# --- nothing carries the client address ------------------------------------------------------


def test_no_client_ip(lab_pool):
    lab = lab_pool.get("no-client-ip")
    run = probe_all(lab, ["aws", "http-via-nlb"])
    aws = run["aws"]
    assert run.fact("aws", "tg.pp_v2") is False
    assert aws.facts["tg.pp_v2"].note == "AWS default: attribute absent"
    assert run.fact("aws", "tg.preserve_ip") is False
    assert aws.facts["tg.preserve_ip"].note == "AWS default for ip targets over TCP: attribute absent"
    assert "proxy_protocol_v2.enabled" not in aws.evidence["target_groups"][0]["attributes"]
    via = run["http-via-nlb"]
    assert via.failure_class == FC.OK
    assert run.fact("http-via-nlb", "via_nlb.client_ip") == NLB_IP
    assert run.fact("http-via-nlb", "via_nlb.client_ip_class") == "nlb"
    assert via.status == Status.FAIL


# --- numTrustedProxies lets clients forge their address -----------------------------------------


def test_trusted_proxies_forgeable(lab_pool):
    lab = lab_pool.get("trusted-proxies-forgeable")
    run = probe_all(lab, ["xff-forge", "kube", "envoy"])
    forge = run["xff-forge"]
    assert run.fact("xff-forge", "xff.spoofable") is True
    assert forge.status == Status.FAIL
    # numTrustedProxies 1: the single forged entry (the chain's first address) is taken as the client
    took = run.fact("xff-forge", "forge.external_address")
    assert took == f"{FORGED_XFF_NET}60" and took in forge.summary
    assert run.fact("xff-forge", "xff.forged_count_won") == 1
    assert run.fact("xff-forge", "xff.trusted_hops_measured") == 1
    assert run.fact("envoy", "gateway.xff_num_trusted_hops") >= 1


# --- mesh config changed after the pods started ------------------------------------------------


def test_mesh_config_pods_predate(lab_pool):
    lab = lab_pool.get("mesh-config-pods-predate")
    run = probe_all(lab, ["kube", "envoy"])
    assert run.fact("kube", "mesh.pp") is True
    assert run.fact("kube", "gateway.pp_configured") == ["mesh config"]
    assert run.fact("kube", "mesh.changed_at") is not None
    assert run.fact("envoy", "gateway.pp_live") is False


def test_mesh_config_pods_predate_is_seen(lab_pool):
    lab = lab_pool.get("mesh-config-pods-predate")
    run = probe_all(lab, ["kube"])
    assert run.fact("kube", "gateway.pods_predate_mesh") is True


# --- proxy.istio.io/config on the wrong objects ----------------------------------------------------


def test_annotation_on_service(lab_pool):
    lab = lab_pool.get("annotation-on-service")
    run = probe_all(lab, ["kube", "envoy"])
    kube = run["kube"]
    assert kube.status == Status.FAIL
    assert run.fact("kube", "gateway.proxy_config_misplaced") == ["Service metadata", "Deployment metadata"]
    assert run.fact("kube", "gateway.pp_pod_template") is False
    assert "misplaced" in kube.summary
    assert run.fact("envoy", "gateway.pp_live") is False


# --- an EnvoyFilter merges the PROXY filter after tls_inspector --------------------------------------


def test_envoyfilter_after_tls_inspector(lab_pool):
    lab = lab_pool.get("envoyfilter-after-tls-inspector")
    run = probe_all(lab, ["envoy", "kube"])
    assert run.fact("envoy", "gateway.pp_after_tls_inspector") is True
    filters = run.fact("envoy", "gateway.listener_filters")
    assert any(names.index("envoy.filters.listener.tls_inspector") < names.index("envoy.filters.listener.proxy_protocol")
               for names in filters.values() if len(names) == 2), filters
    [pp] = run.fact("kube", "envoyfilter.pp")
    assert (pp["name"], pp["operation"], pp["apply_to"]) == ("proxy-protocol", "MERGE", "LISTENER")
