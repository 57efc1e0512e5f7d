"""PROXY v2 codec throughput: ppdoctor vs the PyPI ``proxy-protocol`` package vs scapy.

Run from the repository root: ``python benchmarks/codec.py``. Writes the ``## Codec``
section of benchmarks/RESULTS.md (other sections are kept) and prints, as its last line,
``decode speedup vs proxy-protocol: <N>x`` for the TCP4 + CRC32C + AWS VPCE case.

Fairness: every contender gets the complete header bytes and does the same work —
addresses, TLVs and, when a CRC32C TLV is present, its verification (proxy-protocol's
``ProxyProtocolV2.unpack`` checks it too; scapy's dissection does not). For encoding,
proxy-protocol and scapy start from pre-built objects (their natural input, ipaddress
objects for proxy-protocol) while ppdoctor's ``proxy_v2`` starts from address strings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)
from socket import SOCK_STREAM
from typing import Any

import crc32c
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6
from proxyprotocol.tlv import ProxyProtocolTLV
from proxyprotocol.v2 import ProxyProtocolV2 as PPv2Codec

from ppdoctor.proxyproto import parse, proxy_v2
from ppdoctor.proxyproto.scapy_layer import PPv2TLV
from ppdoctor.proxyproto.scapy_layer import ProxyProtocolV2 as ScapyPPv2

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
#: CPU time of this process, not wall time: on a shared machine other processes' bursts stretch wall
#: time of whichever contender runs at that moment; the codec is single-threaded and never waits.
_clock = time.process_time_ns
HEADLINE_CASE = "TCP4 + CRC32C + AWS VPCE"
VPCE = "vpce-0123456789abcdef0"


@dataclass
class Case:
    name: str
    src: tuple[str, int]
    dst: tuple[str, int]
    crc32c: bool = False
    vpce_id: str | None = None

    def ppdoctor_bytes(self) -> bytes:
        return proxy_v2(self.src, self.dst, crc32c=self.crc32c, vpce_id=self.vpce_id)

    def proxyprotocol_result(self):
        tlv = ProxyProtocolTLV(init={0xEA: b"\x01" + self.vpce_id.encode()} if self.vpce_id else None)
        cls = ProxyResultIPv4 if "." in self.src[0] else ProxyResultIPv6
        return cls(
            (ip_address(self.src[0]), self.src[1]),
            (ip_address(self.dst[0]), self.dst[1]),
            protocol=SOCK_STREAM,
            tlv=tlv,
        )

    def scapy_packet(self) -> ScapyPPv2:
        fields: dict[str, Any] = {"src_port": self.src[1], "dst_port": self.dst[1]}
        if "." in self.src[0]:
            fields.update(fam=1, src_ip=self.src[0], dst_ip=self.dst[0])
        else:
            fields.update(fam=2, src_ip6=self.src[0], dst_ip6=self.dst[0])
        tlvs = []
        if self.crc32c:
            tlvs.append(PPv2TLV(type=0x03))
        if self.vpce_id:
            tlvs.append(PPv2TLV(type=0xEA, value=b"\x01" + self.vpce_id.encode()))
        return ScapyPPv2(tlvs=tlvs, **fields)


CASES = [
    Case("TCP4", ("203.0.113.7", 51234), ("10.0.0.5", 443)),
    Case(HEADLINE_CASE, ("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True, vpce_id=VPCE),
    Case("TCP6", ("2001:db8::7", 51234), ("2001:db8:1::5", 443)),
]


def _calibrate(fn: Callable[[Any], Any], arg: Any, min_time: float) -> int:
    """Iterations for one timed run of at least ``min_time`` seconds."""
    n = 1
    while True:
        start = _clock()
        for _ in range(n):
            fn(arg)
        elapsed = _clock() - start
        if elapsed >= min_time * 1e9 / 4:
            return max(n, int(n * min_time * 1e9 / max(elapsed, 1)))
        n *= 4


def ops_per_second(
    contenders: dict[str, tuple[Callable[[Any], Any], Any]], *, repeat: int, min_time: float
) -> dict[str, float]:
    """Best of ``repeat`` timed runs per contender; runs are interleaved so that load from
    other processes hits every contender alike."""
    plan = {name: (fn, arg, range(_calibrate(fn, arg, min_time))) for name, (fn, arg) in contenders.items()}
    best: dict[str, int] = {}
    for _ in range(repeat):
        for name, (fn, arg, loop) in plan.items():
            start = _clock()
            for _ in loop:
                fn(arg)
            elapsed = _clock() - start
            best[name] = min(best.get(name, elapsed), elapsed)
    return {name: len(plan[name][2]) * 1e9 / best[name] for name in plan}


def check_agreement(case: Case, data: bytes) -> None:
    """All contenders must read the same header, or the comparison means nothing."""
    ours = parse(data)
    theirs = PPv2Codec().unpack(data)
    pkt = ScapyPPv2(data)
    assert (ours.header.src.address, ours.header.src.port) == (str(theirs.source[0]), theirs.source[1])
    assert (ours.header.dst.address, ours.header.dst.port) == (str(theirs.dest[0]), theirs.dest[1])
    assert ours.crc32c == ("valid" if case.crc32c else "absent")
    assert bytes(case.scapy_packet()) == data
    assert bytes(pkt)[: len(data)] == data
    if case.vpce_id:
        assert ours.header.aws_vpce_id == case.vpce_id
        assert theirs.tlv[0xEA] == b"\x01" + case.vpce_id.encode()


def run(repeat: int, min_time: float) -> list[dict[str, Any]]:
    rows = []
    pp_codec = PPv2Codec()
    for case in CASES:
        data = case.ppdoctor_bytes()
        check_agreement(case, data)
        result = case.proxyprotocol_result()
        packet = case.scapy_packet()

        def encode_ours(_: Any, src=case.src, dst=case.dst, crc=case.crc32c, vpce=case.vpce_id) -> bytes:
            return proxy_v2(src, dst, crc32c=crc, vpce_id=vpce)

        timings = {
            "decode": ops_per_second(
                {
                    "ppdoctor": (parse, data),
                    "proxy-protocol": (pp_codec.unpack, data),
                    "scapy": (ScapyPPv2, data),
                },
                repeat=repeat,
                min_time=min_time,
            ),
            "encode": ops_per_second(
                {
                    "ppdoctor": (encode_ours, None),
                    "proxy-protocol": (pp_codec.pack, result),
                    "scapy": (bytes, packet),
                },
                repeat=repeat,
                min_time=min_time,
            ),
        }
        for operation, t in timings.items():
            rows.append({"case": case.name, "bytes": len(data), "operation": operation, **t})
            print(
                f"{case.name:<26} {operation:<6} ppdoctor {t['ppdoctor']:>10,.0f}/s  "
                f"proxy-protocol {t['proxy-protocol']:>9,.0f}/s  scapy {t['scapy']:>8,.0f}/s",
                flush=True,
            )
    return rows


def markdown(rows: list[dict[str, Any]], repeat: int, min_time: float) -> str:
    lines = [
        "## Codec",
        "",
        "PROXY v2 decode/encode throughput (ops per CPU second of the process, best of "
        f"{repeat} interleaved runs of ≥{min_time:g} s each; `python benchmarks/codec.py`).",
        "",
        "| case | bytes | op | ppdoctor | proxy-protocol | scapy | vs proxy-protocol | vs scapy |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['bytes']} | {r['operation']} | {r['ppdoctor']:,.0f} | "
            f"{r['proxy-protocol']:,.0f} | {r['scapy']:,.0f} | "
            f"{r['ppdoctor'] / r['proxy-protocol']:.1f}x | {r['ppdoctor'] / r['scapy']:.1f}x |"
        )
    lines += [
        "",
        "- decode: ppdoctor `parse()` (detects v1/v2, addresses as text, TLV objects, CRC32C check); "
        "proxy-protocol `ProxyProtocolV2().unpack()` (ipaddress objects, TLV map, CRC32C check); "
        "scapy `ProxyProtocolV2(bytes)` (ppdoctor's layer; no CRC check).",
        "- encode: ppdoctor `proxy_v2()` from address strings; proxy-protocol `pack()` from a pre-built "
        "result (it always adds a CRC32C TLV when the crc32c module is installed, even for the plain "
        "cases); scapy `bytes(packet)` (len and CRC filled in by `post_build`).",
        f"- Python {platform.python_version()} ({platform.machine()}), proxy-protocol {version('proxy-protocol')}, "
        f"scapy {version('scapy')}, crc32c {version('crc32c')} "
        f"({'hardware' if crc32c.hardware_based else 'software'} CRC); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} when the run ended.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (best is kept)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timed run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to update")
    args = parser.parse_args(argv)
    rows = run(args.repeat, args.min_time)
    write_section(args.output, markdown(rows, args.repeat, args.min_time))
    print(f"wrote the Codec section of {args.output}")
    headline = next(r for r in rows if r["case"] == HEADLINE_CASE and r["operation"] == "decode")
    print(f"decode speedup vs proxy-protocol: {headline['ppdoctor'] / headline['proxy-protocol']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
