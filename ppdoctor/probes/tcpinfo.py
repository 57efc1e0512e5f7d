"""The kernel's view of a TCP connection's round-trip time (Linux TCP_INFO), for timings no busy event loop inflates.

A handshake timed with the event loop's clock includes however long other probes held the
loop and the GIL before the connect callback ran (190 ms seen for a loopback handshake). The
kernel measures the SYN → SYN-ACK round trip itself: ``struct tcp_info.tcpi_rtt`` (µs),
smoothed RTT, which right after the handshake is that one sample (linux/include/uapi/linux/tcp.h;
tcp(7) "TCP_INFO"). Elsewhere, or if the call fails, callers fall back to the clock and say so.
"""

from __future__ import annotations

import socket
import struct

# struct tcp_info: 8 one-byte fields, then u32 tcpi_rto … ; tcpi_rtt is the 16th u32 (offset 68),
# tcpi_rttvar the 17th (linux/include/uapi/linux/tcp.h, unchanged since Linux 2.6).
_RTT_OFFSET = 68
_TCP_INFO = getattr(socket, "TCP_INFO", 11)

METHOD_KERNEL = "tcp_info-rtt"
METHOD_CLOCK = "connect-clock"


def kernel_rtt_ms(sock: socket.socket | None) -> float | None:
    """tcpi_rtt of a connected TCP socket in ms, or None where the kernel does not say (non-Linux, closed)."""
    if sock is None or not hasattr(socket, "IPPROTO_TCP"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except (OSError, ValueError):
        return None
    if len(raw) < _RTT_OFFSET + 8:
        return None
    rtt_us, _rttvar = struct.unpack_from("=II", raw, _RTT_OFFSET)
    return rtt_us / 1000.0 if rtt_us else None
