"""Scenario files: every shipped one loads; bad keys and values are rejected with file, key and what is allowed."""

from __future__ import annotations

import tomllib

import pytest

from ppdoctor.lab.scenario import ScenarioError, list_scenarios, load_scenario, parse_scenario, scenario_dir

REQUIRED = {
    "no-client-ip", "preserve-on-nat", "pp-on-hc-status-port", "preserve-on-pp-on", "tg-pp-on-gateway-off",
    "gateway-pp-tg-off", "mesh-config-pods-predate", "annotation-on-service", "trusted-proxies-forgeable",
    "gateway-optional-tg-off", "echo-drops-xff", "healthy",
    # issue 12 (field catalogue, network level)
    "preserve-on-sg-blocks-clients", "server-first-header-placement", "dualstack-ipv6-client", "idle-timeout-reset",
    "privatelink-preserve-on",
}


def test_shipped_scenarios_cover_the_required_set():
    names = {s.name for s in list_scenarios()}
    assert REQUIRED <= names
    for s in list_scenarios():
        assert s.description, s.name
        assert s.expected_findings, s.name
        assert s.path is not None and s.path.stem == s.name


def _base() -> dict:
    return tomllib.loads((scenario_dir() / "healthy.toml").read_text())


@pytest.mark.parametrize(
    "mutate, key, allowed",
    [
        (lambda d: d["aws"].__setitem__("colour", "blue"), "aws.colour", "allowed here:"),
        (lambda d: d["aws"]["target_group"]["health_check"].__setitem__("protocol", "UDP"),
         "aws.target_group.health_check.protocol", "allowed: TCP, HTTP, HTTPS"),
        (lambda d: d["aws"]["target_group"]["attributes"].__setitem__("proxy_protocol_v2.enabled", "yes"),
         "aws.target_group.attributes.proxy_protocol_v2.enabled", 'allowed: "true", "false"'),
        (lambda d: d.setdefault("client", {}).__setitem__("source", "10.0.0.5"), "client.source", "loopback"),
        (lambda d: d["aws"].__setitem__("private_default_route", "vpn"), "aws.private_default_route", "allowed: nat, igw"),
        (lambda d: d.__setitem__("expected_findings", ["PPD999x"]), "expected_findings", "PPD000"),
        (lambda d: d["aws"]["target_group"]["health_check"].__setitem__("port", "healthz"),
         "aws.target_group.health_check.port", "traffic-port"),
        (lambda d: d["aws"].__setitem__("tcp_listener_port", 443), "aws.tcp_listener_port", "other than the NLB's"),
        (lambda d: d["aws"].__setitem__("tcp_listener_port", 70000), "aws.tcp_listener_port", "from 1 to 65535"),
    ],
)
def test_invalid_scenarios_are_rejected_with_key_and_allowed_values(mutate, key, allowed):
    data = _base()
    mutate(data)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "broken.toml")
    message = str(err.value)
    assert message.startswith("broken.toml: key '" + key + "'")
    assert allowed in message


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ScenarioError) as err:
        load_scenario("no-such-scenario")
    assert "healthy" in str(err.value)


def test_scenario_from_a_path(tmp_path):
    src = (scenario_dir() / "hairpin.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(src.replace('name = "hairpin"', 'name = "mine"'))
    assert load_scenario(str(path)).name == "mine"
    path.write_text("name = [")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(path))
