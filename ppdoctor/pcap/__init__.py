"""Offline evidence: read a pcap/pcapng capture, classify every TCP flow, and decide catalogue findings.

UI-free (the TUI's Pcap screen and ``ppdoctor pcap`` both call ``analyze``); see docs/pcap.md.
"""

from __future__ import annotations

from .analyze import ANSWER, FIRST_BYTES, HANDSHAKE, Analysis, analyze
from .reader import CaptureError, ReadStats, read_segments

__all__ = ["analyze", "Analysis", "CaptureError", "ReadStats", "read_segments", "HANDSHAKE", "FIRST_BYTES", "ANSWER"]
