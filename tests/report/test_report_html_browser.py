"""The HTML report in a real browser: headless Chromium renders it offline to a non-blank PNG, the verdict is in the
DOM, the Mermaid diagram reads as text, and the page asks for nothing over the network."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ppdoctor.incident import IncidentLog
from ppdoctor.session import IncidentSession
from tests.tui.support import demo_config, demo_observations, demo_plan

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str]]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {k: v or "" for k, v in attrs}))

    Tags().feed(html)
    return found


def _incident_html(tmp_path: Path) -> tuple[Path, IncidentSession]:
    session = IncidentSession(demo_config(), incident=IncidentLog(tmp_path / "incident.jsonl"), by="test")
    session.adopt_observations(list(demo_observations().values()))
    session.diagnose()
    plan = demo_plan()
    session.record("plan", f"{plan.id}: 1 change(s) shown", fix=plan.id, plan=plan.as_dict())
    session.record("confirm", f"{plan.id}: confirmed by user", fix=plan.id, confirmed=True, who="user")
    change = plan.changes[0]
    change.status = "applied"
    session.record("change", "applied", fix=plan.id, cid="c1", index=0, change=change.as_dict())
    session.record(
        "verify",
        "gateway-pp: passed after 4.2 s",
        fix=plan.id,
        cid="c1",
        verification={"check": "gateway-pp", "passed": True, "seconds": 4.2, "observations": []},
    )
    session.note("operator: <b>not markup</b>")
    from ppdoctor.report import write_report

    return write_report(session, tmp_path / "report.html"), session


def test_html_report_renders_in_headless_chromium(tmp_path):
    assert Path(CHROMIUM).exists(), "Debian's chromium is required (scripts/install-system-deps installs it)"
    page, session = _incident_html(tmp_path)
    tags = _tags(page.read_text())
    assert [a for t, a in tags if t == "script"] == [{"type": "application/json", "id": "ppdoctor-report"}]  # none runs
    assert not [(t, a) for t, a in tags if {"src", "href", "srcset", "data"} & a.keys() or t in ("link", "iframe")]
    assert any(
        t == "meta" and a.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in a["content"]
        for t, a in tags
    )  # and the browser is told to fetch nothing

    png = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1200,1400"]
    shot = subprocess.run([*common, f"--screenshot={png}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert png.exists() and png.stat().st_size > 0, shot.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]

    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colors = rgb.getcolors(maxcolors=1 << 22)
    assert rgb.size == (1200, 1400)
    assert len(colors) > 20  # text, tables and the verdict cards, not a blank page
    assert any(n > 50 and r > 180 and g < 90 and b < 90 for n, (r, g, b) in colors)  # the red "before" card border

    top = session.findings[0]
    text = dom.stdout
    assert f"{top.id} — {top.title}" in text  # the verdict, as the browser holds it
    assert 'id="verdict-before"' in text and 'id="verdict-after"' in text
    assert "flowchart LR" in text and 'class="mermaid"' in text  # the diagram as readable text
    assert "&lt;b&gt;not markup&lt;/b&gt;" in text  # operator text stays text


@pytest.mark.parametrize("hostile", ["</script><script>alert(1)</script>", "<!--", "<img src=x onerror=alert(1)>"])
def test_embedded_json_cannot_break_out(tmp_path, hostile):
    session = IncidentSession(demo_config())
    session.note(hostile)
    from ppdoctor.report import render_report

    html = render_report(session, "html")
    assert hostile not in html
    assert html.count("<script") == 1
