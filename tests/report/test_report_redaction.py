"""Reports: every format carries the findings and the diagram, and no secret survives in any of them."""

from __future__ import annotations

import asyncio
import json

import pytest

from ppdoctor.config import EchoTarget, NlbTarget, TargetConfig, Timeouts
from ppdoctor.report import SCHEMA_VERSION, redact, write_report
from ppdoctor.session import IncidentSession

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN0123456789abcdef"
BEARER = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNlY3JldA"
COOKIE = "session=cookie-secret-4242"


async def _hostile_echo(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    body = json.dumps({
        "headers": {"Authorization": [f"Bearer {BEARER}"], "Cookie": [COOKIE],
                    "X-Forwarded-For": ["203.0.113.9"], "X-Envoy-External-Address": ["203.0.113.9"]},
        "origin": "203.0.113.9",
        "debug": f"aws_secret_access_key={SECRET_KEY} token={SESSION_TOKEN}",
    }).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: " + COOKIE.encode()
                 + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    writer.close()


@pytest.fixture
def planted_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def test_no_secret_reaches_any_export(tmp_path, planted_env):
    async def scenario():
        server = await asyncio.start_server(_hostile_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = TargetConfig(
            name=f"prod {ACCESS_KEY} token={SESSION_TOKEN}",
            nlb=NlbTarget(address=f"127.0.0.1:{port}"),
            echo=EchoTarget(path="/get"), timeouts=Timeouts(connect=2, response=3, total=5),
        )
        session = IncidentSession(config)
        async with server:
            await session.probe_all(["http-via-nlb", "tcp"])
        session.diagnose()
        return session

    session = asyncio.run(scenario())
    obs = session.observations["http-via-nlb"]
    assert obs.status.value == "ok", obs.as_dict()
    assert COOKIE in json.dumps(obs.as_dict())  # the raw evidence did contain the secrets …
    for suffix in ("md", "json", "html"):
        path = write_report(session, tmp_path / f"report.{suffix}")
        text = path.read_text()
        for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, BEARER, "cookie-secret-4242"):
            assert secret not in text, (suffix, secret)  # … the exports do not
        assert "[REDACTED]" in text
        assert "flowchart LR" in text
        assert "http-via-nlb" in text
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert {"target", "environment", "timeline", "observations", "findings", "changes", "verifications",
            "diagram", "verdict", "first_diagnosis", "plans", "final_diagnosis", "incident"} <= data.keys()
    assert data["timeline"][0]["kind"] == "probe"


def test_html_escapes_hostile_text(tmp_path):
    session = IncidentSession(TargetConfig(name="<script>alert(1)</script>"))
    session.record("note", "<img src=x onerror=alert(1)>")
    text = write_report(session, tmp_path / "r.html").read_text()
    assert "<script>alert" not in text and "<img src" not in text


@pytest.mark.parametrize("value", [
    ["Set-Cookie", "a=b"], {"authorization": "Basic dXNlcjpwYXNz"}, "Cookie: a=b\r\nHost: x",
])
def test_redact_shapes(value):
    out = json.dumps(redact(value))
    assert "a=b" not in out and "dXNlcjpwYXNz" not in out


def test_unknown_format_is_a_clear_error(tmp_path):
    from ppdoctor.errors import PPDoctorError

    with pytest.raises(PPDoctorError, match="cannot tell the report format"):
        write_report(IncidentSession(TargetConfig()), tmp_path / "r.pdf")


def test_incident_content_is_redacted_in_every_format(tmp_path, planted_env):
    """Secrets in what the incident record adds — plans, changes, rollbacks, notes, bench — never reach a report."""
    from ppdoctor.incident import IncidentLog
    from ppdoctor.report import build_report

    log = IncidentLog(tmp_path / "incident.jsonl")
    session = IncidentSession(TargetConfig(name="prod"), incident=log, by="test")
    change = {"kind": "k8s-merge-patch", "object": "Service istio-system/gw", "field": 'metadata.annotations["x"]',
              "before": f"token={SESSION_TOKEN}", "after": f"Bearer {BEARER}", "status": "applied", "verify": "",
              "payload": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}, "rollback_payload": None}
    session.record("plan", "FIX-X: 1 change(s) shown", fix="FIX-X", plan={"id": "FIX-X", "title": f"t {ACCESS_KEY}",
                                                                             "changes": [change]})
    session.record("confirm", "FIX-X: confirmed", fix="FIX-X", confirmed=True, who=f"user {ACCESS_KEY}")
    session.record("change", f"applied: {SECRET_KEY}", fix="FIX-X", cid="c1", change=change)
    session.record("rollback", "conflict", step={"cid": "c1", "object": "o", "field": "f", "before": f"Cookie: {COOKIE}",
                                                 "ours": f"aws_secret_access_key={SECRET_KEY}", "now": BEARER,
                                                 "status": "conflict"})
    session.record("bench", "bench", table=[f"Cookie: {COOKIE}"], comparison=[])
    session.note(f"operator pasted {ACCESS_KEY} and Bearer {BEARER}")
    data = build_report(session)
    assert data["changes"][0]["verification"] == "none" and data["plans"][0]["confirmation"]["confirmed"] is True
    for suffix in ("md", "json", "html"):
        text = write_report(session, tmp_path / f"r.{suffix}").read_text()
        for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, BEARER, "cookie-secret-4242", "dXNlcjpwYXNzd29yZA"):
            assert secret not in text, (suffix, secret)
        assert "[REDACTED]" in text
