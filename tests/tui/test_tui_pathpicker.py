"""The discovered-path picker: several paths → the Setup screen asks (gateway · port · NLB); the choice becomes the target."""

from __future__ import annotations

import argparse
from typing import Any

from ppdoctor import tui as tui_module
from ppdoctor.app import PPDoctorApp
from ppdoctor.tui import run_default
from ppdoctor.discovery.model import Discovery, GatewayRef, PathCandidate
from ppdoctor.session import IncidentSession
from ppdoctor.widgets.pathpicker import PathPickerModal

from .conftest import screen_text, settle
from .support import SIZE, demo_config


def _candidate(kind: str, name: str, port: int, lb: str) -> PathCandidate:
    return PathCandidate(
        gateway=GatewayRef(kind, "istio-system", name), service=f"istio-system/{name}", port=port, target_port=8080,
        nlb={"name": lb, "arn": f"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/{lb}/0123",
             "dns_name": f"{lb}-0123456789abcdef.elb.us-east-1.amazonaws.com", "scheme": "internet-facing"},
        listener_port=port, target_group_arn=f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{lb}-{port}/1",
        target_type="ip", region="us-east-1", deployment=f"istio-system/{name}", pods=[f"{name}-abc"])


PATHS = [_candidate("Deployment", "istio-ingressgateway", 80, "istio-ingress-nlb"),
         _candidate("Gateway", "public-gw[bold]", 80, "istio-gwapi-nlb")]  # names from the cluster: no markup


async def test_several_paths_are_offered_and_the_choice_becomes_the_target():
    app = PPDoctorApp(IncidentSession(demo_config()), landing="setup")
    app.discovery = Discovery(paths=list(PATHS))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, PathPickerModal)
        text = screen_text(app)
        assert "2 client-IP paths found" in text
        assert "Gateway istio-system/public-gw[bold]" in text and "NLB istio-gwapi-nlb" in text
        await pilot.press("down", "enter")
        await settle(pilot, app)
        assert not isinstance(app.screen, PathPickerModal)
        assert app.config.nlb.name == "istio-gwapi-nlb"
        assert app.config.aws.target_group_arns == (PATHS[1].target_group_arn,)
        assert app.config.kubernetes.gateway_service == "public-gw[bold]"
        assert app.config.kubernetes.kubeconfig == demo_config().kubernetes.kubeconfig  # credentials stay


async def test_escape_keeps_the_current_target():
    app = PPDoctorApp(IncidentSession(demo_config()), landing="setup")
    app.discovery = Discovery(paths=list(PATHS))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert not isinstance(app.screen, PathPickerModal)
        assert app.config == demo_config()


def test_run_default_discovers_when_the_config_names_no_nlb(monkeypatch):
    apps: list[PPDoctorApp] = []
    monkeypatch.setattr(PPDoctorApp, "run", lambda self, *a, **k: apps.append(self) or 0)
    monkeypatch.setattr(tui_module, "missing_target_reason", lambda config, path: None)
    monkeypatch.setattr(tui_module, "load_config", lambda path: demo_config())
    seen: list[Any] = []

    def fake(path, cfg):
        seen.append(cfg)
        return cfg, Discovery(paths=list(PATHS))

    monkeypatch.setattr("ppdoctor.discovery.target.discover_for_tui", fake)
    assert run_default(argparse.Namespace(config=None)) == 0
    assert seen and len(apps[-1].discovery.paths) == 2
