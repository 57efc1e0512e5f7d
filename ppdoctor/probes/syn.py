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


def _send_syn(dst: str, dport: int, src: str | None, timeout: float) -> dict[str, object]:
    # scapy is imported only here, and not through scapy.all (every layer: ~1 s of a 3 s `probe --all`)
    from scapy.config import conf
    from scapy.layers.inet import IP, TCP
    from scapy.sendrecv import sr1
    from scapy.supersocket import L3RawSocket

    if dst.startswith("127."):
        conf.L3socket = L3RawSocket  # loopback needs a raw L3 socket, not the link layer
    sport = random.randint(40000, 60000)
    pkt = IP(dst=dst, src=src) / TCP(sport=sport, dport=dport, flags="S", seq=random.randint(0, 2**31))
    # threaded=False: one packet needs no sender thread, and scapy 2.8's threaded mode can race its
    # sender against the sniffer closing its pipe (OSError: Bad file descriptor in a stray thread)
    answer = sr1(pkt, timeout=timeout, verbose=0, threaded=False)
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
