"""The syn probe (needs CAP_NET_RAW): send a TCP SYN to the NLB with scapy and see who answers.

No answer, an answer from the NLB's address, or an answer from a foreign address (an
asymmetric return path: the target replying around the NLB, e.g. via a NAT gateway).
Without the privilege it is skipped with the reason, never a crash.
"""

from __future__ import annotations

import os
import random

from .context import ProbeContext, run_blocking
from .model import Observation, Status


def _has_raw_socket_privilege() -> bool:
    import socket

    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    except PermissionError:
        return False
    except OSError:
        return False
    s.close()
    return True


# Classic BPF (linux/filter.h): what the answer socket lets through to scapy. SKF_NET_OFF makes the loads
# relative to the IP header whatever the interface's link layer (loopback, Ethernet, a tunnel).
_SKF_NET_OFF = -0x100000
_LDB, _LDH, _JEQ, _JSET, _AND, _RET = 0x30, 0x28, 0x15, 0x45, 0x54, 0x06
_SO_ATTACH_FILTER = 26


def answer_filter(client_port: int) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) of a filter that accepts IPv4 TCP segments to ``client_port`` (any source: a foreign
    SYN-ACK comes from the target's own address and port) and drops everything else.

    Without it the raw socket hands every IP packet of the host to scapy, which parses each in Python: on a
    busy host the answer waits behind the others (or is dropped with the socket's buffer) and the probe says
    "no answer" of a SYN-ACK that came. A header with IP options is let through (scapy matches it)."""
    def net(offset: int) -> int:
        return (offset + _SKF_NET_OFF) & 0xFFFFFFFF  # two's complement: k is a u32

    # jt/jf count the instructions skipped: 9 accepts, 10 drops
    return [
        (_LDB, 0, 0, net(9)),  # 0: the IP protocol
        (_JEQ, 0, 8, 6),  # 1: TCP, else drop
        (_LDH, 0, 0, net(6)),  # 2: flags and fragment offset
        (_JSET, 6, 0, 0x1FFF),  # 3: a later fragment carries no TCP header: drop
        (_LDB, 0, 0, net(0)),  # 4: version and IHL
        (_AND, 0, 0, 0x0F),  # 5: IHL
        (_JEQ, 0, 2, 5),  # 6: IP options: accept, scapy matches it
        (_LDH, 0, 0, net(22)),  # 7: the TCP destination port
        (_JEQ, 0, 1, client_port),  # 8: ours: accept, else drop
        (_RET, 0, 0, 0x40000),  # 9: accept the whole packet
        (_RET, 0, 0, 0),  # 10: drop
    ]


def _attach(sock: object, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer only has to live through the call."""
    import ctypes
    import socket
    import struct

    insns = b"".join(struct.pack("HBBI", *i) for i in program)
    buf = ctypes.create_string_buffer(insns)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)  # type: ignore[attr-defined]


def _send_syn(dst: str, dport: int, src: str | None, timeout: float) -> dict[str, object]:
    # scapy is imported only here, and not through scapy.all (every layer: ~1 s of a 3 s `probe --all`)
    from scapy.config import conf
    from scapy.layers.inet import IP, TCP
    from scapy.supersocket import L3RawSocket

    sport = random.randint(40000, 60000)
    # loopback needs a raw L3 socket, not the link layer
    sock = L3RawSocket() if dst.startswith("127.") else conf.L3socket()
    try:
        if hasattr(sock, "ins"):
            _attach(sock.ins, answer_filter(sport))
        pkt = IP(dst=dst, src=src) / TCP(sport=sport, dport=dport, flags="S", seq=random.randint(0, 2**31))
        # threaded=False: one packet needs no sender thread, and scapy 2.8's threaded mode can race its
        # sender against the sniffer closing its pipe (OSError: Bad file descriptor in a stray thread)
        answer = sock.sr1(pkt, timeout=timeout, verbose=0, threaded=False)
    finally:
        sock.close()
    if answer is None:
        return {"answer": "none", "sport": sport}
    tcp = answer.getlayer(TCP)
    return {"answer_from": answer[IP].src, "flags": str(tcp.flags) if tcp else None, "sport": sport}


async def probe_syn(ctx: ProbeContext) -> Observation:
    obs = Observation("syn")
    if os.name != "posix" or not _has_raw_socket_privilege():
        obs.status = Status.SKIPPED
        obs.summary = "needs CAP_NET_RAW (run as root or grant the capability) to send a raw SYN"
        return obs
    host, port = ctx.nlb_address()
    import socket

    try:
        dst = socket.gethostbyname(host)
    except OSError as exc:
        obs.status = Status.ERROR
        obs.summary = f"cannot resolve {host}: {exc}"
        return obs
    result = await run_blocking(_send_syn, dst, port, ctx.config.nlb.client_source or None,
                                ctx.config.timeouts.connect)
    obs.evidence.update({"target": f"{dst}:{port}", **result})
    if result.get("answer") == "none":
        obs.fact("syn.answer", "none")
        obs.status = Status.FAIL
        obs.summary = f"no answer to a SYN sent to {dst}:{port}"
    elif result["answer_from"] == dst:
        obs.fact("syn.answer", "nlb")
        obs.summary = f"{dst}:{port} answered the SYN itself (flags {result['flags']})"
    else:
        obs.fact("syn.answer", "foreign")
        obs.fact("syn.answer_from", result["answer_from"])
        obs.status = Status.FAIL
        obs.summary = f"the SYN-ACK came from {result['answer_from']}, not {dst}: asymmetric return path"
    return obs
