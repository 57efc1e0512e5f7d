"""The Pcap screen (key 7): a capture file in, summary, findings and flows out; remote text shown literally."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from ppdoctor.app import PPDoctorApp
from ppdoctor.proxyproto import proxy_v2
from tests.pcap.capbuild import Conversation, ethernet, pcap

from .conftest import screen_text, settle
from .support import HOSTILE, HOSTILE_SHOWN, FakeReport, demo_session

BIG = (200, 60)


def _capture(tmp_path) -> str:
    req = b"GET /" + HOSTILE.encode() + b" HTTP/1.1\r\nHost: gw\r\n\r\n"
    bad = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(
        proxy_v2(("198.51.100.7", 1), ("10.0.1.23", 80)) + req).s(b"HTTP/1.1 400 Bad Request\r\n\r\n").close()
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for t, f in bad.packets]))
    return str(path)


async def _read(pilot, app, path: str, nlb: str = "") -> None:
    await pilot.press("7")
    await settle(pilot, app)
    app.screen.query_one("#pcap-path", Input).value = path
    app.screen.query_one("#pcap-nlb", Input).value = nlb
    app.screen.action_read()
    await settle(pilot, app)


async def test_pcap_screen_shows_summary_findings_and_flows(tmp_path):
    app = PPDoctorApp(demo_session(), landing="probes", report_backend=FakeReport(), cursor_blink=False)
    async with app.run_test(size=BIG) as pilot:
        await _read(pilot, app, _capture(tmp_path), "10.0.1.23")
        text = screen_text(app)
        assert "PPD003" in text and "ppv2-proxy 1" in text
        table = app.screen.query_one("#pcap-table", DataTable)
        assert table.row_count == 1
        detail = str(table.get_row_at(0)[-1])
        assert HOSTILE_SHOWN in detail and "status=400" in detail


async def test_pcap_screen_without_a_target_and_a_bad_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    app = PPDoctorApp(None, landing="setup", report_backend=FakeReport(), cursor_blink=False)
    async with app.run_test(size=BIG) as pilot:
        await _read(pilot, app, str(bad))
        assert app.screen.MODE == "pcap"
        text = screen_text(app)
        assert "not a pcap or pcapng capture" in text and "next:" in text
