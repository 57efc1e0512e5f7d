"""The kernel's view of a TCP connection's timings (Linux TCP_INFO, SO_TIMESTAMPNS), which no busy event loop inflates.

A handshake timed with the event loop's clock includes however long other probes held the
loop and the GIL before the connect callback ran (190 ms seen for a loopback handshake). The
kernel measures the SYN → SYN-ACK round trip itself: ``struct tcp_info.tcpi_rtt`` (µs),
smoothed RTT, which right after the handshake is that one sample (linux/include/uapi/linux/tcp.h;
tcp(7) "TCP_INFO"). Elsewhere, or if the call fails, callers fall back to the clock and say so.
"""

from __future__ import annotations

import socket
import struct
import sys

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


# --- the response: when the kernel received its first byte --------------------------------------------------
#
# A first byte timed with the loop's clock includes however long the loop was busy before the read
# callback ran. With SO_TIMESTAMPNS the kernel stamps each received segment (CLOCK_REALTIME, socket(7)
# "SO_TIMESTAMPNS"); a MSG_PEEK recvmsg reads that stamp without taking the data from the stream.
# asm-generic/socket.h: SO_TIMESTAMPNS_OLD = SCM_TIMESTAMPNS = 35 (x86, arm, arm64, riscv; Python has no
# constant for it); its payload is a struct timespec of two native longs.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_FIONREAD = 0x541B  # SIOCINQ: bytes waiting in the receive queue (asm-generic/ioctls.h)
METHOD_RX_STAMP = "so_timestampns"


def enable_rx_timestamps(sock: socket.socket | None) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot (non-Linux, closed)."""
    if sock is None or not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except (OSError, ValueError):
        return False
    return True


def peek_rx_time_ns(sock: socket.socket) -> int | None:
    """The kernel's receive stamp (ns since the epoch) of the first byte queued on the non-blocking
    ``sock``, leaving the data in the stream; None when nothing is queued. A pending reset or EOF is
    never consumed here (no recvmsg without bytes queued), so the owner's own read still sees it."""
    import fcntl

    try:
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), _FIONREAD, b"\0\0\0\0"))[0]
        if queued <= 0:
            return None
        data, ancillary, _flags, _addr = sock.recvmsg(1, socket.CMSG_SPACE(_TIMESPEC.size), socket.MSG_PEEK)
    except OSError:
        return None
    if not data:
        return None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return sec * 1_000_000_000 + nsec
    return None
