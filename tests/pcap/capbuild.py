"""Synthetic captures built with struct: frames for every link type, pcap and pcapng writers, TCP conversations."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from socket import AF_INET, AF_INET6, inet_pton

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_ip(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """An IPv4 or IPv6 packet carrying one TCP segment, checksums filled in (tshark checks nothing by default)."""
    v6 = ":" in src
    fam = AF_INET6 if v6 else AF_INET
    s, d = inet_pton(fam, src), inet_pton(fam, dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    length = len(tcp) + len(payload)
    pseudo = s + d + (struct.pack("!IxxxB", length, 6) if v6 else struct.pack("!xBH", 6, length))
    csum = _csum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    if v6:
        return struct.pack("!IHBB", 6 << 28, length, 6, 64) + s + d + tcp + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + tcp + payload


def ethernet(ip: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for i, vid in enumerate(vlans):
        head += struct.pack("!HH", 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100, vid)
    return head + struct.pack("!H", etype) + ip


def sll(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00", etype) + ip


def sll2(ip: bytes) -> bytes:
    etype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", etype, 0, 2, 1, 0, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00") + ip


FRAMERS = {1: ethernet, 113: sll, 276: sll2, 101: lambda ip: ip, 228: lambda ip: ip, 229: lambda ip: ip}


def pcap(packets: list[tuple[float, bytes]], linktype: int = 1, *, big: bool = False, nano: bool = False,
         snaplen: int = 262144) -> bytes:
    o = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, frame in packets:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        cap = frame[:snaplen]
        out.append(struct.pack(o + "IIII", sec, frac, len(cap), len(frame)) + cap)
    return b"".join(out)


def _block(o: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)


def pcapng(packets: list[tuple[int, float, bytes]], interfaces: list[tuple[int, int | None]], *,
           big: bool = False) -> bytes:
    """``interfaces``: (linktype, if_tsresol byte or None); packets: (interface id, ts, frame)."""
    o = ">" if big else "<"
    out = [_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    units = []
    for lt, res in interfaces:
        opts = b""
        if res is not None:
            opts = struct.pack(o + "HH", 9, 1) + bytes([res]) + b"\x00\x00\x00" + struct.pack(o + "HH", 0, 0)
        out.append(_block(o, 1, struct.pack(o + "HHI", lt, 0, 262144) + opts))
        units.append(1e-6 if res is None else (2.0 ** -(res & 0x7F) if res & 0x80 else 10.0 ** -res))
    for iface, ts, frame in packets:
        t = round(ts / units[iface])
        out.append(_block(o, 6, struct.pack(o + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
                          + frame))
    return b"".join(out)


@dataclass
class Conversation:
    """A TCP connection written packet by packet: ``c(...)`` from the client, ``s(...)`` from the server."""

    client: tuple[str, int]
    server: tuple[str, int]
    t: float = 1_700_000_000.0
    cseq: int = 1000
    sseq: int = 5000
    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def _emit(self, src, dst, seq, ack, flags, payload):
        self.t += 0.001
        self.packets.append((self.t, tcp_ip(src[0], dst[0], src[1], dst[1], seq, ack, flags, payload)))

    def syn(self):
        self._emit(self.client, self.server, self.cseq, 0, SYN, b"")
        return self

    def synack(self, from_ip: str | None = None):
        src = (from_ip, self.server[1]) if from_ip else self.server
        self._emit(src, self.client, self.sseq, self.cseq + 1, SYN | ACK, b"")
        return self

    def handshake(self):
        self.syn().synack()
        self.cseq += 1
        self.sseq += 1
        self._emit(self.client, self.server, self.cseq, self.sseq, ACK, b"")
        return self

    def c(self, payload: bytes = b"", flags: int = ACK | PSH, *, offset: int | None = None):
        seq = self.cseq + (offset or 0)
        self._emit(self.client, self.server, seq, self.sseq, flags, payload)
        if offset is None:
            self.cseq += len(payload) + (1 if flags & FIN else 0)
        return self

    def s(self, payload: bytes = b"", flags: int = ACK | PSH):
        self._emit(self.server, self.client, self.sseq, self.cseq, flags, payload)
        self.sseq += len(payload) + (1 if flags & FIN else 0)
        return self

    def close(self):
        self.c(b"", FIN | ACK)
        self.s(b"", FIN | ACK)
        self._emit(self.client, self.server, self.cseq, self.sseq, ACK, b"")
        return self
