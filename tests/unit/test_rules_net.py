"""Network-level field rules (PPD017 security groups, PPD022 PrivateLink): hand-built facts that fire them,
near misses that must not, and the security-group evaluation the lab and the sg probe share."""

from __future__ import annotations

import pytest

from ppdoctor.aws_sg import groups_admit, permission_admits
from ppdoctor.diagnosis import diagnose
from ppdoctor.diagnosis.model import FactView
from ppdoctor.diagnosis.rules_net import ppd017, ppd022
from ppdoctor.probes.model import Observation, Status
from ppdoctor.probes.security_groups import evaluate


def _view(**facts) -> FactView:
    obs = Observation("hand")
    for name, value in facts.items():
        obs.fact(name.replace("__", "."), value)
    return FactView([obs])


SG_BLOCKS = dict(tg__preserve_ip=True, tg__pp_v2=True, sg__prober_allowed=False, sg__public_allowed=False,
                 sg__target_groups=["sg-1"], sg__target_ingress_cidrs=["10.0.0.0/16"], via_nlb__result="timeout-response",
                 routes__private_default="igw")


@pytest.mark.parametrize("case, facts, fires, fixes", [
    ("blocked, timed out, PP on", SG_BLOCKS, True, ["FIX-TG-PRESERVE-OFF"]),
    ("blocked, PP off: PP must carry the address", {**SG_BLOCKS, "tg__pp_v2": False}, True,
     ["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"]),
    ("only public clients blocked", {**SG_BLOCKS, "sg__prober_allowed": True, "via_nlb__result": "ok"}, True,
     ["FIX-TG-PRESERVE-OFF"]),
    ("no via-NLB probe yet", {k: v for k, v in SG_BLOCKS.items() if k != "via_nlb__result"}, True, ["FIX-TG-PRESERVE-OFF"]),
    ("near miss: preservation off", {**SG_BLOCKS, "tg__preserve_ip": False}, False, None),
    ("near miss: groups admit both", {**SG_BLOCKS, "sg__prober_allowed": True, "sg__public_allowed": True}, False, None),
    ("near miss: groups not evaluated", {**SG_BLOCKS, "sg__prober_allowed": None, "sg__public_allowed": None}, False, None),
    ("near miss: PrivateLink (PPD022 explains it)", {**SG_BLOCKS, "privatelink__services": ["vpce-svc-1"]}, False, None),
])
def test_ppd017(case, facts, fires, fixes):
    finding = ppd017(_view(**facts))
    assert (finding is not None) == fires, case
    if fires:
        assert finding.id == "PPD017" and finding.fixes == fixes
        assert "loadBalancerSourceRanges" in finding.explanation  # the manual alternatives are named


def test_ppd017_confidence_is_highest_when_the_prober_itself_timed_out():
    strong = ppd017(_view(**SG_BLOCKS))
    weak = ppd017(_view(**{**SG_BLOCKS, "sg__prober_allowed": True, "via_nlb__result": "ok"}))
    assert strong.confidence > weak.confidence


def test_ppd017_outranks_ppd002_when_the_route_is_fine():
    findings = diagnose([_obs(SG_BLOCKS)])
    assert findings[0].id == "PPD017"
    assert all(f.superseded_by == "PPD017" for f in findings if f.id == "PPD002")


def _obs(facts):
    obs = Observation("hand")
    for name, value in facts.items():
        obs.fact(name.replace("__", "."), value)
    return obs


PL = dict(privatelink__services=["vpce-svc-1"], tg__preserve_ip=True, tg__pp_v2=False,
          via_nlb__result="ok", via_nlb__client_ip_class="nlb")


@pytest.mark.parametrize("case, facts, severity, fixes", [
    ("PP off, gateway sees the NLB", PL, "error", ["FIX-PP-ENABLE", "FIX-TG-PRESERVE-OFF"]),
    ("PP on: the address arrives, preservation is still useless", {**PL, "tg__pp_v2": True, "via_nlb__client_ip_class": "prober"},
     "warning", ["FIX-TG-PRESERVE-OFF"]),
    ("near miss: preservation off", {**PL, "tg__preserve_ip": False}, None, None),
    ("near miss: no endpoint service", {**PL, "privatelink__services": []}, None, None),
    ("near miss: privatelink probe did not run", {k: v for k, v in PL.items() if k != "privatelink__services"}, None, None),
])
def test_ppd022(case, facts, severity, fixes):
    finding = ppd022(_view(**facts))
    if severity is None:
        assert finding is None, case
        return
    assert finding.id == "PPD022" and finding.severity == severity and finding.fixes == fixes
    assert "0xEA" in finding.explanation


# --- security-group evaluation --------------------------------------------------------

VPC_ONLY = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
WEB = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
V6 = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}
FROM_NLB_SG = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": "sg-nlb"}]}


@pytest.mark.parametrize("perm, source, port, groups, admitted", [
    (VPC_ONLY, "10.0.3.4", 8080, (), True),
    (VPC_ONLY, "203.0.113.9", 8080, (), False),
    (WEB, "203.0.113.9", 443, (), True),
    (WEB, "203.0.113.9", 8080, (), False),  # port outside the range
    ({**WEB, "IpProtocol": "udp"}, "203.0.113.9", 443, (), False),
    (V6, "2001:db8::1", 8080, (), True),
    (V6, "203.0.113.9", 8080, (), False),  # an IPv6 range never admits IPv4
    (FROM_NLB_SG, "203.0.113.9", 8080, ("sg-nlb",), True),
    (FROM_NLB_SG, "203.0.113.9", 8080, (), False),
    (VPC_ONLY, "not-an-ip", 8080, (), False),
])
def test_permission_admits(perm, source, port, groups, admitted):
    assert permission_admits(perm, source, port, source_groups=groups) is admitted


def test_groups_only_allow():
    assert groups_admit([VPC_ONLY, WEB], "203.0.113.9", 80)
    assert not groups_admit([], "10.0.3.4", 80)


def _sg_data(preserve, cidr, lb_groups=(), lb_perms=()):
    return {"targets": [("10.0.2.10", 8080)], "groups_of": {"10.0.2.10": ["sg-t"]}, "lb_groups": list(lb_groups),
            "permissions": {"sg-t": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]}], "sg-nlb": list(lb_perms)},
            "nlb_ips": ["10.0.1.10"], "listener_port": 80, "preserve": preserve, "target_type": "ip", "protocol": "TCP"}


@pytest.mark.parametrize("preserve, cidr, prober, public", [
    ("true", "10.0.0.0/16", False, False),   # the target sees clients: VPC-only rules drop them
    ("false", "10.0.0.0/16", True, True),    # the target sees the NLB: inside the VPC range
    ("true", "0.0.0.0/0", True, True),
    (None, "10.0.0.0/16", True, True),       # absent attribute: AWS default for IP targets over TCP is off
])
def test_sg_probe_tests_the_address_the_target_would_see(preserve, cidr, prober, public):
    result = evaluate(_sg_data(preserve, cidr), "198.51.100.7")
    assert (result["prober_allowed"], result["public_allowed"]) == (prober, public)


def test_sg_probe_applies_the_nlb_groups_to_the_client_first():
    data = _sg_data("false", "10.0.0.0/16", lb_groups=["sg-nlb"],
                    lb_perms=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}])
    result = evaluate(data, "198.51.100.7")
    assert result["prober_allowed"] is True and result["public_allowed"] is False


# --- PPD019 (IPv6 clients, dualstack NLB, IPv4 targets) ---------------------------------

V6 = dict(ipv6__client=True, ipv6__client_scope="global", lb__ip_address_type="dualstack", tg__ip_address_type="ipv4",
          tg__pp_v2=False, tg__preserve_ip=True, via_nlb__result="ok", via_nlb__client_ip_class="nlb")


@pytest.mark.parametrize("case, facts, fixes", [
    ("preservation on, gateway sees the NLB", V6, ["FIX-PP-ENABLE", "FIX-TG-PRESERVE-OFF"]),
    ("preservation off", {**V6, "tg__preserve_ip": False}, ["FIX-PP-ENABLE"]),
    ("no via-NLB answer yet", {k: v for k, v in V6.items() if not k.startswith("via_nlb")},
     ["FIX-PP-ENABLE", "FIX-TG-PRESERVE-OFF"]),
    ("near miss: IPv4 client", {**V6, "ipv6__client": False}, None),
    ("near miss: PROXY v2 already on", {**V6, "tg__pp_v2": True}, None),
    ("near miss: IPv6 target group (preservation works)", {**V6, "tg__ip_address_type": "ipv6"}, None),
    ("near miss: IPv4-only NLB", {**V6, "lb__ip_address_type": "ipv4"}, None),
    ("near miss: the backend saw the client", {**V6, "via_nlb__client_ip_class": "prober"}, None),
])
def test_ppd019(case, facts, fixes):
    from ppdoctor.diagnosis.rules_net import ppd019

    finding = ppd019(_view(**facts))
    assert (finding is not None) == (fixes is not None), case
    if finding is not None:
        assert finding.fixes == fixes and "INET6" in finding.explanation


def test_ppd019_supersedes_the_generic_no_client_ip_finding():
    findings = diagnose([_obs({**V6, "tg__preserve_ip": False, "gateway__pp_live": False})])
    assert findings[0].id == "PPD019"
    assert any(f.id == "PPD001" and f.superseded_by == "PPD019" for f in findings)


@pytest.mark.parametrize("ip, scope", [
    ("::1", "loopback"), ("fe80::1", "link-local"), ("fd00::5", "unique-local"), ("::ffff:192.0.2.1", "ipv4-mapped"),
    ("2001:db8::7", "documentation"), ("2a00:1450::1", "global"), ("[2a00:1450::1]", "global"),
    ("192.0.2.1", None), ("nonsense", None), (None, None),
])
def test_v6_scope(ip, scope):
    from ppdoctor.probes.ipv6 import v6_scope

    assert v6_scope(ip) == scope


# --- PPD020 (idle timeout) ---------------------------------------------------------------

@pytest.mark.parametrize("result, fires", [("reset", True), ("empty-reply", True), ("ok", False),
                                           ("timeout-response", False), (None, False)])
def test_ppd020(result, fires):
    from ppdoctor.diagnosis.rules_net import ppd020

    finding = ppd020(_view(idle__result=result, idle__timeout_s=60, idle__waited_s=3.6))
    assert (finding is not None) == fires
    if fires:
        assert finding.fixes == [] and "SO_KEEPALIVE" in finding.explanation and "60 s" in finding.explanation
        assert finding.confidence == 0.9 and not finding.confirm


def test_ppd020_without_the_listener_attributes_still_fires_on_the_reset_and_names_the_permission():
    """AWS refused: the idle probe's own evidence (reset after its silence) decides; the timeout stays open."""
    from ppdoctor.diagnosis.rules_net import ppd020

    finding = ppd020(_view(idle__result="reset", idle__tested_timeout_s=60, idle__waited_s=3.6))
    assert finding is not None and finding.confidence < 0.9 and "idle" in finding.explains
    assert any("DescribeListenerAttributes" in line for line in finding.confirm)
    assert ppd020(_view(idle__result="ok", idle__tested_timeout_s=60)) is None  # near miss: survived the silence


def test_idle_reset_with_aws_refused_is_ppd020_never_healthy():
    """The idle-timeout-reset world with AWS refused: no target health, so no PPD000; PPD020 from the probe."""
    aws = Observation("aws")
    aws.status = Status.ERROR
    aws.summary = "AccessDenied: elasticloadbalancing:DescribeLoadBalancers was refused"
    idle = Observation("idle")
    idle.status = Status.FAIL
    idle.fact("idle.result", "reset")
    idle.fact("idle.tested_timeout_s", 60)
    idle.fact("idle.waited_s", 3.6)
    rest = _obs(dict(gateway__plain_result="reset", gateway__ppv2_result="ok", via_nlb__result="ok",
                     via_nlb__client_ip_class="prober", svc__hc_annotations={"healthcheck-protocol": "tcp"}))
    findings = diagnose([aws, idle, rest])
    assert findings[0].id == "PPD020" and "PPD000" not in [f.id for f in findings]
    assert "PPD000" not in [f.id for f in diagnose([aws, rest])]  # nor without the idle probe


@pytest.mark.parametrize("facts, confidence, says", [
    ({"idle__timeout_s": 60}, 0.9, "idle timeout (60 s)"),
    # AWS not readable: the probe waited past the shortest timeout AWS allows
    ({"idle__tested_timeout_s": 60}, 0.8, "at most 60 s"),
])
def test_ppd020_with_and_without_the_listener_attribute(facts, confidence, says):
    from ppdoctor.diagnosis.rules_net import ppd020

    finding = ppd020(_view(idle__result="reset", **facts))
    assert finding.confidence == confidence and says in finding.explanation
    assert bool(finding.confirm) == ("idle__timeout_s" not in facts)


# --- PPD018 (server-first protocol, header placement) -------------------------------------

REQUIRED_MODE = dict(gateway__plain_result="reset", gateway__ppv2_result="ok")
OFF_MODE = dict(gateway__plain_result="ok", gateway__ppv2_result="http-4xx")
SF = dict(server_first__via_nlb_greeting=False, server_first__direct_pp_greeting=True,
          server_first__direct_plain_greeting=False, tg__pp_v2=True)


@pytest.mark.parametrize("case, facts, confidence", [
    ("default placement", {**SF, "server_first__header_placement": "on_first_ack_with_payload"}, 0.95),
    # AWS not readable: no placement, no targets; the greeting came once the client sent a line end
    ("AWS denied: only the nudge through the NLB",
     {"server_first__via_nlb_greeting": False, "server_first__via_nlb_nudge_greeting": True}, 0.8),
    ("placement known, no direct target: the nudge", {"server_first__via_nlb_greeting": False,
     "server_first__via_nlb_nudge_greeting": True, "server_first__header_placement": "on_first_ack_with_payload"}, 0.85),
    ("near miss: silent and nudged alike, no direct evidence",
     {"server_first__via_nlb_greeting": False, "server_first__via_nlb_nudge_greeting": False}, None),
    ("placement unknown but a direct greeting", SF, 0.8),
    ("placement attribute read as the default", {**SF, "server_first__header_placement": "on_first_ack_with_payload"}, 0.95),
    ("gateway requires PROXY (differential probes)",
     {**SF, **REQUIRED_MODE, "server_first__header_placement": "on_first_ack_with_payload"}, 0.95),
    ("target group attributes refused: the header placement alone", {**SF, "tg__pp_v2": None}, 0.8),
    ("near miss: on_first_ack already: the header is not what waits", {**SF, "server_first__header_placement": "on_first_ack"}, None),
    # an Envoy without the PROXY filter (PPD003's world): it passes a connection straight on, so a silent NLB
    # client is not what withholds a greeting — and its 400 to a header is not one (test_what_counts_as_a_greeting)
    ("near miss: the gateway has no PROXY filter", {**SF, **OFF_MODE, "server_first__direct_plain_greeting": True}, None),
    ("near miss: no PROXY filter, the greeting only through a nudge",
     {"server_first__via_nlb_greeting": False, "server_first__via_nlb_nudge_greeting": True, **OFF_MODE}, None),
    # the port's own evidence outranks the HTTP port's mode: it greets only behind a header, so it waits for one
    ("HTTP listener without the filter, the greeting port with one", {**SF, **OFF_MODE}, 0.8),
    ("near miss: gateway mode unknown, the service greets without a header too",
     {**SF, "server_first__direct_plain_greeting": True}, None),
    ("near miss: the greeting arrives through the NLB", {**SF, "server_first__via_nlb_greeting": True}, None),
    ("near miss: no greeting even with a header", {**SF, "server_first__direct_pp_greeting": False}, None),
    ("near miss: the target group sends no header", {**SF, "tg__pp_v2": False}, None),
    ("near miss: probe not run", {"tg__pp_v2": True}, None),
    # the greeting listener's own target group counts, not the configured (HTTP) one
    ("TCP listener's group sends the header, the HTTP one does not",
     {**SF, "tg__pp_v2": False, "server_first__pp_v2": True, "server_first__listener_port": 25,
      "server_first__header_placement": "on_first_ack_with_payload"}, 0.95),
    ("near miss: the TCP listener's group sends no header", {**SF, "server_first__pp_v2": False}, None),
])
def test_ppd018(case, facts, confidence):
    from ppdoctor.diagnosis.rules_net import ppd018

    finding = ppd018(_view(**facts))
    assert (finding is not None) == (confidence is not None), case
    if finding is not None:
        assert finding.confidence == confidence and finding.fixes == [] and "on_first_ack" in finding.explanation


@pytest.mark.parametrize("first, is_greeting", [
    (b"220 mail ESMTP\r\n", True), (b"SSH-2.0-OpenSSH_9.6\r\n", True), (b"J\x00\x00\x00\n5.7.32", True),
    (b"HTTP/1.1 400 Bad Request\r\n", False),  # an HTTP listener rejecting the bare header
    (b"", False), (None, False),
])
def test_what_counts_as_a_greeting(first, is_greeting):
    from ppdoctor.probes.server_first import greeted

    assert greeted(first) is is_greeting


# --- near misses of the probes behind PPD017/PPD018, and what the findings explain ----------------

def test_sg_probe_ipv6_client_of_ipv4_targets_is_seen_as_the_nlb():
    """Preservation cannot carry an IPv6 source to an IPv4 target: the groups must admit the NLB, not ::/0."""
    data = {**_sg_data("true", "10.0.0.0/16"), "nlb_ips": ["2600:1f18::10", "10.0.1.10"]}
    result = evaluate(data, "2001:db8::7")
    assert result["prober_allowed"] is True  # the target sees 10.0.1.10, inside the VPC range
    assert result["public_allowed"] is False  # an IPv4 public client keeps its own address


def _failing(probe, summary, facts):
    o = Observation(probe)
    for name, value in facts.items():
        o.fact(name.replace("__", "."), value)
    o.status, o.summary = Status.FAIL, summary
    return o


def test_failing_sg_and_tcp_probes_are_explained_by_ppd017():
    sg = _failing("sg", "security groups drop the prober", {k: v for k, v in SG_BLOCKS.items() if k.startswith("sg__")})
    rest = _obs({k: v for k, v in SG_BLOCKS.items() if not k.startswith("sg__")})
    tcp = _failing("tcp", "connect timed out", {})
    findings = diagnose([sg, rest, tcp])
    assert findings[0].id == "PPD017" and {"sg", "tcp"} <= set(findings[0].explains)
    assert "PPD090" not in [f.id for f in findings]


def test_a_withheld_greeting_is_explained_by_ppd018_only_where_the_gateway_waits_for_proxy():
    sf = {k: v for k, v in SF.items() if k.startswith("server_first__")}
    probe = _failing("server-first", "the service greets directly but not through the NLB", sf)
    required = diagnose([probe, _obs({"tg__pp_v2": True, **REQUIRED_MODE})])
    assert required[0].id == "PPD018" and "server-first" in required[0].explains
    assert "PPD090" not in [f.id for f in required]
    # a gateway without the filter cannot withhold it: PPD018 stays silent, the failure is named, not hidden
    probe = _failing("server-first", "the service greets directly but not through the NLB",
                     {**sf, "server_first__direct_plain_greeting": True})
    off = diagnose([probe, _obs({"tg__pp_v2": True, **OFF_MODE})])
    assert "PPD018" not in [f.id for f in off] and "PPD090" in [f.id for f in off]
