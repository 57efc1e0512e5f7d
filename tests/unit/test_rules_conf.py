"""Table-driven tests of the configuration-trap rules (diagnosis/rules_conf.py): facts that fire, near misses that must not."""

from __future__ import annotations

import pytest

from ppdoctor.diagnosis import diagnose
from ppdoctor.diagnosis.engine import FactView
from ppdoctor.diagnosis import rules_conf
from ppdoctor.probes.model import Observation


def view(**facts) -> FactView:
    obs = Observation("hand-built")
    for name, value in facts.items():
        obs.fact(name.replace("__", "."), value)
    return FactView([obs])


def facts(**kw):
    return {k.replace(".", "__"): v for k, v in kw.items()}


CDN_TOO_HIGH = {"gateway.xff_num_trusted_hops": 2, "via_nlb.xff": "203.0.113.50,127.0.0.5",
                "via_nlb.external_address": "127.0.0.5", "via_nlb.client_ip_class": "proxy-in-front",
                "via_nlb.hops_in_front": 1, "tg.pp_v2": True}

PPD023_CASES = [
    # (name, facts, fires, wanted N in the explanation)
    ("one CDN, N=2", CDN_TOO_HIGH, True, 1),
    ("one CDN, N=0", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 0}, True, 1),
    ("two proxies, N=3", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 3,
                          "via_nlb.xff": "203.0.113.50, 198.51.100.9,127.0.0.5"}, True, 2),
    ("N from the kube probe only", {k: v for k, v in CDN_TOO_HIGH.items() if k != "gateway.xff_num_trusted_hops"}
     | {"gateway.num_trusted_proxies": 2}, True, 1),
    ("configured hops, no echo", {"gateway.xff_num_trusted_hops": 2, "via_nlb.hops_in_front": 1}, True, 1),
    # near misses
    ("one CDN, N=1 (right)", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 1,
                              "via_nlb.external_address": "203.0.113.50", "via_nlb.client_ip_class": "external"}, False, None),
    ("no proxy in front (PPD010's case)", {"gateway.xff_num_trusted_hops": 1, "via_nlb.xff": "127.0.0.5",
                                           "via_nlb.client_ip_class": "prober", "via_nlb.hops_in_front": 0}, False, None),
    ("trusted hops unknown", {k: v for k, v in CDN_TOO_HIGH.items() if k != "gateway.xff_num_trusted_hops"}, False, None),
    ("client seen correctly although N differs", {**CDN_TOO_HIGH, "via_nlb.client_ip_class": "external"}, False, None),
]


@pytest.mark.parametrize("name,given,fires,wanted", PPD023_CASES, ids=[c[0] for c in PPD023_CASES])
def test_ppd023(name, given, fires, wanted):
    finding = rules_conf.ppd023(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.id == "PPD023"
        assert f"Set numTrustedProxies to {wanted}." in finding.explanation
        assert finding.fixes == ["FIX-TRUSTED-HOPS-CDN"]


def test_ppd023_supersedes_the_forgery_finding():
    obs = Observation("hand-built")
    for k, v in {**CDN_TOO_HIGH, "xff.spoofable": True}.items():
        obs.fact(k, v)
    findings = diagnose([obs])
    assert findings[0].id == "PPD023"
    assert {f.id: f.superseded_by for f in findings}.get("PPD010") == "PPD023"


# --- PPD005 refinement: the remedy follows the proxy's release --------------------------------

from ppdoctor.diagnosis import rules  # noqa: E402

HC_FAILS = {"tg.pp_v2": True, "hc.protocol": "HTTP", "hc.port": "15021", "hc.would_pass": False,
            "tg.health": [{"state": "unhealthy"}]}

PPD005_CASES = [
    ("1.27, env unset", {"gateway.istio_version": "1.27.1", "gateway.status_pp_env_supported": True,
                         "gateway.status_pp_env": False}, ["FIX-STATUS-PP-ENV", "FIX-HC-TCP"]),
    ("1.28, env set but pods predate it", {"gateway.istio_version": "1.28.0", "gateway.status_pp_env_supported": True,
                                           "gateway.status_pp_env": True, "gateway.status_pp_env_running": False},
     ["FIX-GW-ROLLOUT", "FIX-HC-TCP"]),
    ("1.24, env unset", {"gateway.istio_version": "1.24.2", "gateway.status_pp_env_supported": False,
                         "gateway.status_pp_env": False}, ["FIX-HC-TCP"]),
    ("1.26, env set (ignored)", {"gateway.istio_version": "1.26.0", "gateway.status_pp_env_supported": False,
                                 "gateway.status_pp_env": True}, ["FIX-HC-TCP"]),
    ("release unknown", {}, ["FIX-HC-TCP"]),
]


@pytest.mark.parametrize("name,given,fixes", PPD005_CASES, ids=[c[0] for c in PPD005_CASES])
def test_ppd005_remedy_by_release(name, given, fixes):
    finding = rules.ppd005(view(**facts(**HC_FAILS, **given)))
    assert finding is not None and finding.fixes == fixes


def test_ppd005_not_when_the_status_port_takes_the_header():
    # env active on 1.27: the check passes and no target is unhealthy
    given = {**HC_FAILS, "hc.would_pass": True, "tg.health": [{"state": "healthy"}], "gateway.status_pp": True,
             "gateway.istio_version": "1.27.1", "gateway.status_pp_env_supported": True, "gateway.status_pp_env": True}
    assert rules.ppd005(view(**facts(**given))) is None


# --- PPD028: no listener on the target port ----------------------------------------------------

NO_LISTENER = {"tg.target_type": "ip", "tg.health": [{"id": "10.0.0.5", "port": 8080, "state": "unhealthy"}],
               "tg.healthy_count": 0, "gateway.listener_ports": [8443], "via_nlb.result": "reset",
               "gateway.servers": [{"gateway": "default/gw", "number": 8081, "container_ports": [8081]}]}

PPD028_CASES = [
    ("envoy listens elsewhere", NO_LISTENER, True, 0.95),
    ("no traffic listener at all", {**NO_LISTENER, "gateway.listener_ports": []}, True, 0.95),
    ("kube only: no server lands on the port",
     {k: v for k, v in NO_LISTENER.items() if k != "gateway.listener_ports"} | {"gateway.server_container_ports": [8443]},
     True, 0.8),
    # near misses
    ("listener present", {**NO_LISTENER, "gateway.listener_ports": [8080, 8443]}, False, None),
    ("instance targets (NodePort)", {**NO_LISTENER, "tg.target_type": "instance",
                                     "tg.health": [{"id": "i-1", "port": 30080, "state": "unhealthy"}]}, False, None),
    ("nothing known about listeners", {k: v for k, v in NO_LISTENER.items() if k != "gateway.listener_ports"}, False, None),
    ("no targets", {**NO_LISTENER, "tg.health": []}, False, None),
]


@pytest.mark.parametrize("name,given,fires,confidence", PPD028_CASES, ids=[c[0] for c in PPD028_CASES])
def test_ppd028(name, given, fires, confidence):
    finding = rules_conf.ppd028(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.confidence == confidence and finding.fixes == ["FIX-GW-SERVER-PORT"]
        assert "not a PROXY protocol problem" in finding.explanation


def test_ppd028_ranks_before_proxy_protocol_blame():
    obs = Observation("hand-built")
    # the gateway "requires" PROXY (8443 has the filter) while the target group sends none: PPD004 would blame PP
    for k, v in {**NO_LISTENER, "tg.pp_v2": False, "tg.preserve_ip": False, "gateway.pp_live": True,
                 "gateway.pp_allow_without": False}.items():
        obs.fact(k, v)
    findings = diagnose([obs])
    assert findings[0].id == "PPD028"
    assert {f.id: f.superseded_by for f in findings}.get("PPD004") == "PPD028"


# --- PPD026: in-cluster callers without a PROXY header ------------------------------------------

CALLERS = {"incluster.foreign_pp_errors": 4, "incluster.window_s": 1.0, "incluster.plain_result": "reset",
           "tg.pp_v2": True, "gateway.pp_live": True, "gateway.pp_allow_without": False}

PPD026_CASES = [
    ("callers reset, gateway requires PP", CALLERS, True),
    ("gateway mode from the direct probes", {k: v for k, v in CALLERS.items() if not k.startswith("gateway.")}
     | {"gateway.plain_result": "reset", "gateway.ppv2_result": "ok"}, True),
    ("mode unknown, still evidence", {k: v for k, v in CALLERS.items() if not k.startswith("gateway.")}, True),
    ("target group unread (AWS refused): gateway requires PP and the NLB path works",
     {k: v for k, v in CALLERS.items() if k != "tg.pp_v2"} | {"via_nlb.result": "ok"}, True),
    # near misses
    ("no foreign errors (healthy)", {**CALLERS, "incluster.foreign_pp_errors": 0}, False),
    ("incluster probe did not run", {k: v for k, v in CALLERS.items() if not k.startswith("incluster.")}, False),
    ("the NLB sends no header (PPD004's world)", {**CALLERS, "tg.pp_v2": False}, False),
    ("gateway accepts header-less (optional)", {**CALLERS, "gateway.pp_allow_without": True}, False),
    ("target group unread and the NLB path fails (the NLB may be what sends no header)",
     {k: v for k, v in CALLERS.items() if k != "tg.pp_v2"} | {"via_nlb.result": "reset"}, False),
]


@pytest.mark.parametrize("name,given,fires", PPD026_CASES, ids=[c[0] for c in PPD026_CASES])
def test_ppd026(name, given, fires):
    finding = rules_conf.ppd026(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.severity == "warning" and finding.fixes == []
        assert "allow_requests_without_proxy_protocol" in finding.explanation


# --- PPD024 / PPD025: TLS at the NLB ------------------------------------------------------------

NO_SNI = {"tg.protocol": "TLS", "tg.target_type": "ip", "gateway.tls_server_names": [["*.lab.example"]],
          "gateway.no_filter_chain_match": 3, "via_nlb.result": "reset"}

PPD024_CASES = [
    ("specific hosts, reset", NO_SNI, True),
    ("target group unread (AWS refused): TLS listener, specific hosts, reset",
     {k: v for k, v in NO_SNI.items() if k != "tg.protocol"} | {"via_nlb.tls": True}, True),
    ("kube only: HTTPS server with specific hosts on the target port",
     {"tg.protocol": "TLS", "tg.health": [{"port": 8443}],
      "gateway.servers": [{"gateway": "d/g", "number": 443, "hosts": ["a.example"], "tls_mode": "SIMPLE",
                           "container_ports": [8443]}]}, True),
    # near misses
    ("a catch-all chain exists", {**NO_SNI, "gateway.tls_server_names": [["*.lab.example"], []]}, False),
    ("TCP target group (the client's SNI reaches the gateway)", {**NO_SNI, "tg.protocol": "TCP"}, False),
    ("target group unread, TLS listener, requests work", {k: v for k, v in NO_SNI.items() if k != "tg.protocol"}
     | {"via_nlb.tls": True, "via_nlb.result": "ok"}, False),
    ("target group unread, plain listener", {k: v for k, v in NO_SNI.items() if k != "tg.protocol"}, False),
    ("server is hosts *", {"tg.protocol": "TLS", "tg.health": [{"port": 8443}],
                           "gateway.servers": [{"gateway": "d/g", "number": 443, "hosts": ["*"], "tls_mode": "SIMPLE",
                                                "container_ports": [8443]}]}, False),
    ("passthrough server (not terminated by the gateway)",
     {"tg.protocol": "TLS", "tg.health": [{"port": 8443}],
      "gateway.servers": [{"gateway": "d/g", "number": 443, "hosts": ["a.example"], "tls_mode": "PASSTHROUGH",
                           "container_ports": [8443]}]}, False),
]


@pytest.mark.parametrize("name,given,fires", PPD024_CASES, ids=[c[0] for c in PPD024_CASES])
def test_ppd024(name, given, fires):
    finding = rules_conf.ppd024(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.fixes == ["FIX-GW-HOSTS-WILDCARD"]


LOOP = {"lb.listener_protocols": ["TLS"], "via_nlb.tls": True, "tg.protocol": "TCP", "via_nlb.status": 301,
        "via_nlb.location": "https://x/get", "via_nlb.redirect_loop": True}

PPD025_CASES = [
    ("measured loop", LOOP, True, 0.95),
    ("kube only: redirecting server on the target port",
     {"lb.listener_protocols": ["TLS"], "tg.protocol": "TCP", "tg.health": [{"port": 8080}],
      "gateway.servers": [{"gateway": "d/g", "number": 80, "https_redirect": True, "container_ports": [8080]}]}, True, 0.75),
    # near misses
    ("redirect followed to a page (no loop)", {**LOOP, "via_nlb.redirect_loop": False}, False, None),
    ("TCP listener: the gateway sees TLS itself", {**LOOP, "lb.listener_protocols": ["TCP"], "via_nlb.tls": False}, False, None),
    ("TLS target group", {**LOOP, "tg.protocol": "TLS"}, False, None),
    ("redirect on another port", {"lb.listener_protocols": ["TLS"], "tg.protocol": "TCP", "tg.health": [{"port": 8080}],
                                  "gateway.servers": [{"gateway": "d/g", "number": 81, "https_redirect": True,
                                                       "container_ports": [8081]}]}, False, None),
]


@pytest.mark.parametrize("name,given,fires,confidence", PPD025_CASES, ids=[c[0] for c in PPD025_CASES])
def test_ppd025(name, given, fires, confidence):
    finding = rules_conf.ppd025(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.confidence == confidence and finding.fixes == ["FIX-GW-NO-REDIRECT"]


@pytest.mark.parametrize("chain_answers,loop", [
    ([(301, "https://x/get")], True),  # the same URL again
    ([(301, "https://x/a"), (301, "https://x/b"), (301, "https://x/c"), (301, "https://x/d"), (301, "https://x/e")], True),
    ([(200, None)], False),
    ([(None, None)], False),  # could not follow (scheme the listener does not speak)
])
def test_redirect_follow_bounded(chain_answers, loop):
    import asyncio

    from ppdoctor.probes.redirects import follow

    answers = iter(chain_answers)

    async def fetch(scheme, path):
        return next(answers, (200, None))

    assert asyncio.run(follow("https://x/get", fetch))["loop"] is loop
