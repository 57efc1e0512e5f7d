"""Capture analysis throughput: ``ppdoctor pcap`` vs ``tshark -r FILE -Y proxy`` on the same 10^6-packet capture.

Run from the repository root: ``python benchmarks/pcap.py``. Builds a pcap of NLB-style
connections (Ethernet, IPv4, a PPv2 header with CRC32C and the AWS 0xEA TLV before an HTTP
request, a 200 answer, FIN/FIN/ACK: 9 packets per connection, 1/8 of them plain HTTP answered
by a reset), then times both tools on it in the same run, best of ``--repeat``, and writes the
``## Pcap`` section of benchmarks/RESULTS.md. tshark's dissection of every packet is what the
-Y filter costs; ppdoctor reads the same packets and classifies every flow. Also records the
peak RSS of the ppdoctor run (a child process) to show memory does not follow the file size.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402

from ppdoctor.proxyproto import proxy_v2  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
REQUEST = b"GET /bench HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\nserver: istio-envoy\r\n\r\nok"
ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    # Checksums stay zero: neither tool verifies them by default.
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return ETH + ip + tcp + payload


def build(path: Path, packets: int) -> int:
    """Write the capture; returns the packet count (a multiple of 9 ≤ ``packets``)."""
    nlb = bytes([10, 0, 1, 23])
    gw = bytes([10, 0, 2, 10])
    t = 1_700_000_000.0
    n = 0
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        conn = 0
        while n + 9 <= packets:
            conn += 1
            cport = 1024 + conn % 60000
            client = f"198.51.{conn // 256 % 256}.{conn % 256}"
            c, s = 1000 + conn, 900000 + conn
            plain = conn % 8 == 0
            first = REQUEST if plain else proxy_v2((client, 40000 + conn % 20000), ("10.0.1.23", 80),
                                                   crc32c=True, vpce_id="vpce-0123456789abcdef0") + REQUEST
            seq = [
                (nlb, gw, cport, 8080, c, 0, SYN, b""),
                (gw, nlb, 8080, cport, s, c + 1, SYN | ACK, b""),
                (nlb, gw, cport, 8080, c + 1, s + 1, ACK, b""),
                (nlb, gw, cport, 8080, c + 1, s + 1, ACK | PSH, first),
                (gw, nlb, 8080, cport, s + 1, c + 1 + len(first), ACK, b""),
            ]
            if plain:
                seq += [
                    (gw, nlb, 8080, cport, s + 1, c + 1 + len(first), RST | ACK, b""),
                    (nlb, gw, cport, 8080, c + 1 + len(first), s + 1, ACK, b""),
                    (nlb, gw, cport, 8080, c + 1 + len(first), s + 1, ACK, b""),
                    (nlb, gw, cport, 8080, c + 1 + len(first), s + 1, ACK, b""),
                ]
            else:
                e = c + 1 + len(first)
                seq += [
                    (gw, nlb, 8080, cport, s + 1, e, ACK | PSH, RESPONSE),
                    (nlb, gw, cport, 8080, e, s + 1 + len(RESPONSE), FIN | ACK, b""),
                    (gw, nlb, 8080, cport, s + 1 + len(RESPONSE), e + 1, FIN | ACK, b""),
                    (nlb, gw, cport, 8080, e + 1, s + 2 + len(RESPONSE), ACK, b""),
                ]
            for p in seq:
                t += 0.00001
                frame = _frame(*p)
                sec = int(t)
                f.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)) + frame)
                n += 1
    return n


def _timed(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of a child process.

    CPU time is the fair measure on a shared machine (other processes stretch wall time of
    both tools alike, but not evenly across interleaved runs)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return elapsed, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("tshark is not installed: scripts/install-system-deps")
    tshark_version = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout.splitlines()[0].rstrip(".")
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "bench.pcap"
        n = build(cap, args.packets)
        size = cap.stat().st_size
        print(f"built {cap} ({n} packets, {size / 1e6:.0f} MB)", flush=True)
        ours_cmd = [sys.executable, "-c", "import sys; from ppdoctor.cli import main; sys.exit(main())",
                    "pcap", str(cap), "--json"]
        theirs_cmd = [tshark, "-n", "-r", str(cap), "-Y", "proxy"]
        ours, theirs, rss = [], [], []
        for _ in range(args.repeat):
            wall, cpu, kib = _timed(ours_cmd)
            ours.append((cpu, wall))
            rss.append(kib)
            theirs.append(_timed(theirs_cmd)[:2][::-1])
            print(f"ppdoctor {cpu:.2f} s CPU ({wall:.2f} s wall), tshark {theirs[-1][0]:.2f} s CPU "
                  f"({theirs[-1][1]:.2f} s wall)", flush=True)
        check = subprocess.run(ours_cmd, capture_output=True, text=True)
        import json

        report = json.loads(check.stdout)
        assert report["packets"] == n, report["packets"]
        assert report["summary"]["first_bytes"].get("ppv2-proxy", 0) > 0
    (best_ours, ours_wall), (best_theirs, theirs_wall) = min(ours), min(theirs)
    ratio = best_theirs / best_ours
    wall_ratio = min(w for _, w in theirs) / min(w for _, w in ours)
    lines = [
        "## Pcap",
        "",
        f"Capture analysis of one {n:,}-packet pcap ({size / 1e6:.0f} MB, Ethernet/IPv4, {n // 9:,} connections, "
        f"PPv2 + CRC32C + VPCE before HTTP, 1/8 plain HTTP reset); best of {args.repeat} interleaved runs of the "
        "whole process, CPU time (user + system, from wait4) and wall time (`python benchmarks/pcap.py`).",
        "",
        "| tool | CPU s | packets/s (CPU) | wall s | peak RSS |",
        "|---|---:|---:|---:|---:|",
        f"| `ppdoctor pcap FILE --json` | {best_ours:.2f} | {n / best_ours:,.0f} | {ours_wall:.2f} | "
        f"{max(rss) / 1024:.0f} MiB |",
        f"| `tshark -n -r FILE -Y proxy` | {best_theirs:.2f} | {n / best_theirs:,.0f} | {theirs_wall:.2f} | |",
        "",
        f"- ppdoctor / tshark packets per CPU second: **{ratio:.1f}×** (goal ≥ 2×); by best wall time "
        f"{wall_ratio:.1f}×.",
        "- Memory follows the open flows (at most 100,000) and the 4 MiB read chunk, not the file size: a 2 GiB "
        "capture reads in under 200 MiB RSS (tests/pcap/test_pcap_bad_input.py).",
        f"- {tshark_version}; Python {platform.python_version()} ({platform.machine()}); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} when the run ended.",
        "",
    ]
    write_section(args.output, "\n".join(lines))
    print(f"wrote the Pcap section of {args.output}")
    print(f"pcap speedup vs tshark: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
