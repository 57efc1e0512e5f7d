"""Recapture tests/tui/data/lab-tg-pp-on-gateway-off.json from a live lab (the fixed data of the TUI snapshots).

Run from the worktree root, with the lab extras installed:

    python -m tests.tui.data.capture            # writes tests/tui/data/lab-tg-pp-on-gateway-off.json
    python -m tests.tui.data.capture --raw X    # also keeps the un-normalised capture in X

It starts the ``tg-pp-on-gateway-off`` lab, waits (a poll on DescribeTargetHealth) until every target is
``healthy`` — captured while targets are still ``initial`` the diagnosis is PPD092 "not yet decided" instead
of the settled PPD003 the snapshots should show — runs every default probe, diagnoses, builds the
FIX-GW-PP-ON plan, stops the lab, and writes ``{"obs", "findings", "plan"}`` in the shape
tests/tui/support.py reads. Everything that changes from run to run is normalised so snapshots stay
deterministic: the lab's dynamic ports (each distinct ``ip:port`` becomes a fixed port from 30000 up on the same
address, the NLB 127.1.1.10:30000 and the gateway 127.1.2.10:30011 as support.demo_config names them),
dates, ARN ids, pod-name suffixes and the NLB's emulated handshake delay. After writing it checks that the
diagnosis is PPD003 alone and exits 1 if not (capture again then: the lab was not settled, or a probe failed
by chance on a loaded machine — the raw SYN probe sometimes gets no answer, which shows as PPD090).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "lab-tg-pp-on-gateway-off.json"
SCENARIO = "tg-pp-on-gateway-off"
FIX = "FIX-GW-PP-ON"
FIXED_HTTP_DATE = "Thu, 26 Nov 2026 12:00:00 GMT"
FIXED_ISO_DATE = "2026-11-26T12:00:00+00:00"


def capture() -> dict[str, Any]:
    from ppdoctor.diagnosis import diagnose
    from ppdoctor.fixes import build_plan, read_state
    from ppdoctor.probes import run_probes
    from ppdoctor.probes.context import ProbeContext

    from tests.labsupport import RunningLab

    with tempfile.TemporaryDirectory(prefix="ppdoctor-capture-") as tmp:
        lab = RunningLab(SCENARIO, Path(tmp) / SCENARIO)
        try:
            lab.wait_health("healthy", timeout=60.0)
            observations = asyncio.run(run_probes(lab.config))
            findings = diagnose(observations)
            ctx = ProbeContext(lab.config)
            try:
                plan = build_plan(FIX, read_state(ctx))
            finally:
                ctx.close()
            config = lab.config
        finally:
            lab.stop()
    return {"obs": {o.probe: o.as_dict() for o in observations}, "findings": [f.as_dict() for f in findings],
            "plan": plan.as_dict(), "_endpoints": {"nlb": config.nlb.address, "gateway": config.gateway.direct}}


FAKE_CLIENT_PORT = 41234  # the client port a PROXY header claims (random per run)
SYN_SPORT = 40123  # the source port of the raw SYN probe (random per run)


def _port_map(text: str, endpoints: dict[str, str]) -> dict[str, str]:
    """Every distinct ip:port of the capture → a fixed one on the same address, in order of appearance."""
    ports: dict[str, str] = {endpoints["nlb"]: "127.1.1.10:30000", endpoints["gateway"]: "127.1.2.10:30011"}
    used = set(ports.values())
    fixed = iter(range(30022, 40000, 11))
    for m in re.finditer(r"(127\.\d+\.\d+\.\d+):(\d{2,5})\b", text):
        if m.group(0) not in ports:
            candidate = f"{m.group(1)}:{next(fixed)}"
            while candidate in used:
                candidate = f"{m.group(1)}:{next(fixed)}"
            ports[m.group(0)] = candidate
            used.add(candidate)
    return ports


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    endpoints = data.pop("_endpoints")
    ports = _port_map(json.dumps(data), endpoints)
    by_port = {int(r.rsplit(":", 1)[1]): int(f.rsplit(":", 1)[1]) for r, f in ports.items()}
    arn_ids: dict[str, str] = {}
    ids: dict[str, str] = {}

    def text(s: str) -> str:
        s = re.sub(r"(127\.\d+\.\d+\.\d+):(\d{2,5})\b", lambda m: ports.get(m.group(0), m.group(0)), s)
        # Envoy stat names spell an address with an underscore: listener.127.1.2.10_30011.
        s = re.sub(r"(127\.\d+\.\d+\.\d+)_(\d{2,5})\b",
                   lambda m: ports.get(f"{m.group(1)}:{m.group(2)}", m.group(0)).replace(":", "_"), s)
        s = re.sub(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", FIXED_HTTP_DATE, s)
        s = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?", FIXED_ISO_DATE, s)
        s = re.sub(r"istio-ingressgateway-[0-9a-z]{8,10}-[0-9a-z]{5}", "istio-ingressgateway-f2cdd897f7-d1520", s)
        # ARN ids: each distinct one a fixed id (distinct stays distinct: two listeners keep two ARNs).
        s = re.sub(r"(?<=/)[0-9a-f]{16}\b", lambda m: arn_ids.setdefault(m.group(0), f"{0x506da7a9a74a0000 + len(arn_ids):016x}"), s) \
            if "arn:aws:" in s else s
        # moto's random resource ids, request ids and the NLB's DNS name: each distinct one a fixed one.
        s = re.sub(r"\b(sg|vpc|subnet|rtb|nat|eni|vpce|igw|i)-([0-9a-f]{8,17})\b",
                   lambda m: ids.setdefault(m.group(0), f"{m.group(1)}-{len(ids) + 1:0{len(m.group(2))}x}"), s)
        s = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                   lambda m: ids.setdefault(m.group(0), f"00000000-0000-4000-8000-{len(ids) + 1:012x}"), s)
        s = re.sub(r"\b(istio-ingress-nlb)-[0-9a-f]{6,16}(\.elb\.)", r"\1-0123456789\2", s)
        # A PROXY v1 line's ports: "PROXY TCP4 src dst sport dport".
        s = re.sub(r"(PROXY TCP[46] \S+ \S+ )(\d+) (\d+)",
                   lambda m: f"{m.group(1)}{FAKE_CLIENT_PORT} {by_port.get(int(m.group(3)), int(m.group(3)))}", s)
        return s

    def hexbytes(h: str) -> str:
        b = bytearray(bytes.fromhex(h))
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        if b.startswith(sig) and len(b) >= 28 and b[13] == 0x11:  # PPv2 TCP over IPv4: ports at bytes 24..27
            dport = int.from_bytes(b[26:28], "big")
            b[24:26] = FAKE_CLIENT_PORT.to_bytes(2, "big")
            b[26:28] = by_port.get(dport, dport).to_bytes(2, "big")
        head = len(sig) + 4 + int.from_bytes(b[14:16], "big") if b.startswith(sig) else 0
        rest = text(bytes(b[head:]).decode("latin-1")).encode("latin-1")  # ip:port keep their length (5 digits)
        return (bytes(b[:head]) + rest).hex()

    def walk(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            return {text(k): walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, key) for x in v]
        if isinstance(v, str):
            return hexbytes(v) if key.endswith("_hex") and v else text(v)
        if isinstance(v, int) and not isinstance(v, bool):
            if key.endswith("update_time"):  # Envoy's stat: a wall clock in ms
                return 1_796_140_800_000
            if key == "sport":
                return SYN_SPORT
            # A lab port also appears as a bare number (listener ports, fact values, health results).
            if v in by_port and not any(w in key.lower() for w in ("bytes", "length", "count", "ms")):
                return by_port[v]
        return v

    return walk(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, help="also write the un-normalised capture here")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    data = capture()
    if args.raw:
        args.raw.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    data = normalise(data)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    ids = [f["id"] for f in data["findings"]]
    print(f"wrote {args.out}: {len(data['obs'])} observations, findings {ids}")
    if ids != ["PPD003"]:
        # Anything else is a capture of a passing state (targets not settled → PPD092) or of a flaky probe
        # (the raw SYN probe sometimes gets no answer on a loaded machine → PPD090): capture again.
        print(f"findings {ids}, not just PPD003: the lab was not settled or a probe failed by chance; capture again",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
