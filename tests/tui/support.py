"""Fixed incident data for TUI tests and snapshots (captured from the tg-pp-on-gateway-off lab, ports and dates normalised),
and a gateway that never answers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ppdoctor.config import AwsTarget, EchoTarget, GatewayTarget, KubeTarget, NlbTarget, TargetConfig, Timeouts
from ppdoctor.diagnosis import diagnose
from ppdoctor.fixes.model import Change, FixPlan
from ppdoctor.probes.model import Fact, FailureClass, Observation, Status
from ppdoctor.session import IncidentSession, TimelineEvent

DATA = Path(__file__).parent / "data" / "lab-tg-pp-on-gateway-off.json"
T0 = 1_764_158_400.0  # fixed session start: no clocks in snapshots
SIZE = (120, 40)
HOSTILE = "[@click=app.quit]x[/] [b]bold \x1b[31mred\\"
HOSTILE_SHOWN = "[@click=app.quit]x[/] [b]bold \\x1b[31mred\\"  # how it must read on screen


def _data() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def observation(d: dict[str, Any], at: float = T0) -> Observation:
    obs = Observation(d["probe"], status=Status(d["status"]),
                      failure_class=FailureClass(d["failure_class"]) if d.get("failure_class") else None,
                      summary=d.get("summary", ""), timings_ms=dict(d.get("timings_ms") or {}),
                      evidence=dict(d.get("evidence") or {}), started_at=at, error=d.get("error"))
    for name, fact in (d.get("facts") or {}).items():
        obs.facts[name] = Fact(name, fact.get("value"), fact.get("source", d["probe"]), fact.get("note", ""))
    return obs


def demo_config() -> TargetConfig:
    return TargetConfig(
        name="lab:tg-pp-on-gateway-off",
        nlb=NlbTarget(name="istio-ingress-nlb", address="127.1.1.10:30000", client_source="127.0.0.5"),
        aws=AwsTarget(region="us-east-1", endpoint_url="http://127.0.0.1:30500", static_credentials=True),
        kubernetes=KubeTarget(kubeconfig="lab/kubeconfig", context="ppdoctor-lab"),
        gateway=GatewayTarget(direct="127.1.2.10:30011", admin="127.1.2.10:30088"),
        echo=EchoTarget(path="/get"),
        timeouts=Timeouts(),
        lab=True,
    )


def demo_observations() -> dict[str, Observation]:
    return {name: observation(d, T0 + 1 + i) for i, (name, d) in enumerate(_data()["obs"].items())}


def demo_plan() -> FixPlan:
    d = _data()["plan"]
    return FixPlan(d["id"], d["title"], [Change.from_dict(c) for c in d["changes"]], explanation=d["explanation"],
                   window=d["window"], verify=list(d["verify"]))


def demo_session(*, observations: bool = True, findings: bool = True, timeline: bool = True,
                 config: TargetConfig | None = None) -> IncidentSession:
    session = IncidentSession(config or demo_config())
    session.started_at = T0
    if observations:
        session.observations = demo_observations()
    if findings and observations:
        session.findings = diagnose(session.observations.values())
    if timeline:
        session.timeline = [TimelineEvent(T0 + 0.2, "note", "lab scenario tg-pp-on-gateway-off is ready")]
        for i, obs in enumerate(session.observations.values()):
            session.timeline.append(TimelineEvent(T0 + 1.5 + i * 0.7, "probe",
                                                  f"{obs.probe}: {obs.status.value} — {obs.summary}",
                                                  {"probe": obs.probe}))
        if session.findings:
            top = session.findings[0]
            session.timeline.append(TimelineEvent(T0 + 12.0, "diagnosis", f"{top.id} {top.title}",
                                                  {"findings": [f.as_dict() for f in session.findings]}))
    return session


class FakeReport:
    """Stands in for ppdoctor.report in snapshots: the same calls, deterministic text."""

    def __init__(self) -> None:
        self.written: list[Path] = []

    def render_report(self, session: IncidentSession, fmt: str) -> str:
        if fmt == "json":
            return json.dumps({"target": session.config.name, "findings": [f.id for f in session.findings],
                               "observations": sorted(session.observations)}, indent=2)
        lines = [f"# ppdoctor incident report — {session.config.name}", "", "## Findings", ""]
        lines += [f"- **{f.id}** {f.title} (confidence {f.confidence:.0%})" for f in session.findings]
        lines += ["", "## Observations", ""]
        lines += [f"- `{o.probe}`: {o.status.value} — {o.summary}" for o in session.observations.values()]
        text = "\n".join(lines) + "\n"
        return f"<html><body><pre>{text}</pre></body></html>\n" if fmt == "html" else text

    def write_report(self, session: IncidentSession, path: Path) -> Path:
        fmt = {".json": "json", ".html": "html"}.get(Path(path).suffix, "md")
        Path(path).write_text(self.render_report(session, fmt), encoding="utf-8")
        self.written.append(Path(path))
        return Path(path)


def hostile_config() -> TargetConfig:
    return replace(demo_config(), name=HOSTILE)


class HangingGateway:
    """A TCP server that accepts and never answers (a probe waits out its response timeout), and the config that
    points the NLB at it: ``async with HangingGateway() as gw: PPDoctorApp(IncidentSession(gw.config))``."""

    def __init__(self, response_timeout: float = 15.0) -> None:
        self.accepted = asyncio.Event()  # a probe has connected and now waits for an answer
        self.closed = asyncio.Event()  # the client went away (the probe was cancelled)
        self.response_timeout = response_timeout
        self._server: asyncio.Server | None = None
        self.config: TargetConfig | None = None

    async def _never_answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        await reader.read()  # hold the connection open until the client goes away
        self.closed.set()
        writer.close()

    async def __aenter__(self) -> HangingGateway:
        self._server = await asyncio.start_server(self._never_answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.config = TargetConfig(name="never-answers", nlb=NlbTarget(address=f"127.0.0.1:{port}"),
                                   timeouts=Timeouts(connect=3.0, response=self.response_timeout, total=30.0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
