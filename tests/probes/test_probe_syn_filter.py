"""The syn probe's answer socket carries a kernel filter: only TCP segments to the probe's own port reach scapy,
so a busy host's other traffic can neither delay the SYN-ACK nor push it out of the socket's buffer."""

from __future__ import annotations

import os
import socket
import time

import pytest

from ppdoctor.probes.syn import _attach, answer_filter

ETH_P_IP = 0x0800


def _tcp_traffic(port: int) -> None:
    """A connection attempt to ``port`` on loopback: a SYN (and the kernel's RST or SYN-ACK) on the wire."""
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            pass


def _received(sock: socket.socket) -> list[bytes]:
    frames = []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            frames.append(sock.recv(65535))
        except BlockingIOError:
            time.sleep(0.02)
    return frames


def test_only_segments_to_the_probe_port_pass():
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):  # the probe is skipped without the privilege (test_probe_lab_scenarios)
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ours = listener.getsockname()[1]
        with socket.socket() as other_l:
            other_l.bind(("127.0.0.1", 0))
            other_l.listen()
            other = other_l.getsockname()[1]
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            try:
                _attach(sock, answer_filter(ours))
                sock.setblocking(False)
                _received(sock)  # anything queued before the filter was attached
                _tcp_traffic(other)
                assert _received(sock) == []  # another port's handshake never reaches the socket
                _tcp_traffic(ours)
                frames = _received(sock)
                assert frames, "the segments to the probe's port were filtered out"
                # every frame let through is TCP to our port: the IP header follows the 14-byte loopback link header
                for frame in frames:
                    ip = frame[14:]
                    assert ip[9] == socket.IPPROTO_TCP
                    ihl = (ip[0] & 0x0F) * 4
                    assert int.from_bytes(ip[ihl + 2:ihl + 4], "big") == ours
            finally:
                sock.close()
