"""Unusable files exit 2 with a message that says what to do; memory follows the open flows, not the file size."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from ppdoctor.cli import main
from ppdoctor.pcap.flows import FlowTracker
from ppdoctor.proxyproto import proxy_v2

from .capbuild import Conversation, ethernet, pcap, pcapng, tcp_ip

ROOT = Path(__file__).resolve().parents[2]

REQ = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n"


def _udp_frame() -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    return ethernet(ip + struct.pack("!HHHH", 53, 53, 8, 0))


BAD = {
    "not a capture": (b"hello, this is text\n", "not a pcap or pcapng capture"),
    "zero-length": (b"", "is empty"),
    "unknown link type": (pcap([(1.0, b"\x00" * 40)], linktype=147), "link type 147 is not supported"),
    "pcapng of an unknown link type": (pcapng([(0, 1.0, b"\x00" * 40)], [(147, None)]), "link type 147"),
    "no TCP": (pcap([(1.0, _udp_frame())]), "no TCP segment"),
    "header cut": (pcap([])[:10], "file header is cut"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_unusable_input_exits_2_with_a_message(tmp_path, capsys, name):
    data, message = BAD[name]
    path = tmp_path / "in.pcap"
    path.write_bytes(data)
    assert main(["pcap", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "next:" in err and "Traceback" not in err
    assert main(["pcap", str(path), "--json"]) == 2
    assert message in json.loads(capsys.readouterr().out)["error"]["message"]


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["pcap", str(tmp_path / "nope.pcap")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_exit_status_says_whether_findings_were_made(tmp_path, capsys):
    c = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(REQ).s(b"", 0x14)
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for t, f in c.packets]))
    assert main(["pcap", str(path), "--nlb-ip", "10.0.1.23"]) == 1
    assert "PPD004" in capsys.readouterr().out
    assert main(["pcap", str(path), "--port", "9999"]) == 0
    assert main(["pcap", str(path), "--nlb-ip", "not-an-ip"]) == 2


def test_remote_text_is_printed_escaped(tmp_path, capsys):
    evil = b"GET /\x1b[31mred\x1b]0;title\x07 HTTP/1.1\r\n\r\n"
    c = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(evil).s(b"", 0x14)
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for t, f in c.packets]))
    main(["pcap", str(path), "--nlb-ip", "10.0.1.23"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31mred" in out


def _open_flows(n: int, start: int = 0):
    """n connections that open, send a PROXY header and never close."""
    for i in range(start, start + n):
        src = bytes([10, 1, i >> 8 & 0xFF, i & 0xFF])
        yield (1.0, src, b"\x0a\x00\x02\x0a", 40000 + i % 20000, 8080, 1000, 0, 0x02, b"", False)
        yield (1.0, src, b"\x0a\x00\x02\x0a", 40000 + i % 20000, 8080, 1001, 1, 0x18,
               proxy_v2(("198.51.100.1", 1), ("10.0.1.1", 80)) + REQ * 50, False)


def _peak(n: int) -> tuple[int, FlowTracker]:
    done = []
    tracker = FlowTracker(lambda f: done.append(f.packets), max_open=500)
    tracemalloc.start()
    tracker.feed(_open_flows(n))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tracker.close()
    assert len(done) == n
    return peak, tracker


def _peak_in_a_clean_process(n: int) -> dict:
    """``_peak(n)`` in a fresh interpreter: tracemalloc counts every thread's allocations, and a test process
    that ran lab tests before has client and server threads of its own allocating meanwhile."""
    code = ("import json, sys; from tests.pcap.test_pcap_bad_input import _peak; peak, t = _peak(int(sys.argv[1])); "
            "print(json.dumps({'peak': peak, 'peak_open': t.peak_open, 'evicted': t.evicted}))")
    proc = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_memory_is_bounded_by_open_flows_not_stream_length():
    small, large = _peak_in_a_clean_process(2_000), _peak_in_a_clean_process(20_000)
    assert small["peak_open"] == large["peak_open"] == 501 and large["evicted"] > small["evicted"] > 0
    # ten times the connections, the same open-flow bound: memory must not grow with the stream
    assert large["peak"] < small["peak"] * 1.5


def test_a_2_gb_sparse_capture_streams_in_bounded_memory(tmp_path):
    """2 GiB: a few real flows, then 32k records of 64 KiB of zeros (a hole: nothing is written)."""
    path = tmp_path / "big.pcap"
    c = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(REQ).s(b"", 0x14)
    head = pcap([(t, ethernet(f)) for t, f in c.packets])
    size = 2 << 30
    rec = 65535
    with open(path, "wb") as f:
        f.write(head)
        pos = len(head)
        while pos + 16 + rec <= size:
            f.seek(pos)
            f.write(struct.pack("<IIII", 2, 0, rec, rec))
            pos += 16 + rec
        f.truncate(pos)
    assert os.path.getsize(path) > 2_000_000_000
    # VmHWM, the peak RSS of this process's own address space: getrusage's ru_maxrss would carry the
    # forking pytest process's high-water mark across exec (Linux keeps it in signal->maxrss).
    code = ("import re, sys; from pathlib import Path; from ppdoctor.cli import main; rc = main(['pcap', sys.argv[1], "
            "'--json', '--nlb-ip', '10.0.1.23']); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1), file=sys.stderr); "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=170)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["flows"] == 1 and out["findings"][0]["id"] == "PPD004"
    assert out["packets"] == len(c.packets) + (pos - len(head)) // (16 + rec)
    max_rss_kib = int(proc.stderr.strip().splitlines()[-1])
    assert max_rss_kib < 200 * 1024  # the file is 2 GiB; the reader holds one chunk


def test_tcp_ip_builder_checksums_are_valid():
    """Sanity of the test builder itself (tshark would flag a bad checksum with -o tcp.check_checksum:TRUE)."""
    pkt = tcp_ip("10.0.0.1", "10.0.0.2", 1, 2, 3, 4, 0x18, b"abc")
    s = sum(struct.unpack("!10H", pkt[:20]))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    assert s == 0xFFFF
