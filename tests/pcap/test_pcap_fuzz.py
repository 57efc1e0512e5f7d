"""Damaged captures never end in a traceback: the reader either reads what it can or raises CaptureError."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppdoctor.pcap import CaptureError, analyze
from ppdoctor.proxyproto import proxy_v2

from .capbuild import Conversation, FRAMERS, pcap, pcapng

_conv = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(
    proxy_v2(("198.51.100.7", 1), ("10.0.1.23", 80), crc32c=True) + b"GET / HTTP/1.1\r\n\r\n").s(
    b"HTTP/1.1 200 OK\r\n\r\n").close()


def _run(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.pcap"
        path.write_bytes(data)
        try:
            result = analyze(str(path))
        except CaptureError as exc:
            assert exc.message
        else:
            result.as_dict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linktype=st.sampled_from(sorted(FRAMERS)), ng=st.booleans(), cut=st.integers(0, 2000),
       flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8))
def test_damaged_captures_read_or_fail_cleanly(linktype, ng, cut, flips):
    frames = [(t, FRAMERS[linktype](f)) for t, f in _conv.packets]
    data = bytearray(pcapng([(0, t, f) for t, f in frames], [(linktype, None)]) if ng else pcap(frames, linktype))
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _run(bytes(data[: max(0, len(data) - cut)]))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_frames_after_a_valid_header(frame):
    _run(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 1, 0, len(frame),
                                                                                   len(frame)) + frame)


def test_pcapng_blocks_too_short_for_their_fields():
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)
    short_epb = struct.pack("<III", 6, 12, 12)
    _run(shb + idb + short_epb)
    _run(shb + struct.pack("<III", 1, 12, 12) + short_epb)
