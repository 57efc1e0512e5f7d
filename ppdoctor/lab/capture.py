"""``ppdoctor lab capture``: a real packet capture of a lab scenario, tcpdump on loopback while the probes run.

tcpdump (Debian package, scripts/install-system-deps) listens on ``lo`` filtered to this lab's
endpoints, address *and* port (the NLB listener, the gateway's traffic, TLS and status ports,
the echo pod): every lab on the machine uses the same loopback addresses with its own ports.
The capture then holds what captures on both sides of a real NLB would: client → NLB, NLB →
gateway (with or without a PROXY header), the NLB's health checks, the gateway → echo hop and
the probes' own direct connections. The lab's AWS and Kubernetes APIs and Envoy's admin port
stay out.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import LabError
from . import addresses

TCPDUMP_READY_TIMEOUT_S = 10.0
#: The lab's health-check interval is 1 s (AWS's 10 s × hc_interval_scale 0.1): capture at least
#: this long so every scenario's capture holds health checks too.
MIN_CAPTURE_S = 2.5


def _port(host_port: str) -> int:
    return int(host_port.rsplit(":", 1)[1])


#: lab.json keys of the listening endpoints a capture covers.
CAPTURED_ENDPOINTS = ("nlb", "gateway", "gateway_tls", "gateway_status", "echo")


def capture_filter(endpoints: dict[str, Any]) -> str:
    """BPF: TCP to or from exactly this lab's listening endpoints (address and port on the same side)."""
    parts = []
    for key in CAPTURED_ENDPOINTS:
        value = endpoints.get(key)
        if value:
            host, port = value.rsplit(":", 1)
            parts.append(f"(src host {host} and src port {port}) or (dst host {host} and dst port {port})")
    if not parts:
        raise LabError("the lab's endpoints are unknown (lab.json holds none)", hint="restart the lab")
    return "tcp and (" + " or ".join(parts) + ")"


def pcap_arguments(endpoints: dict[str, Any]) -> list[str]:
    """The ``ppdoctor pcap`` options that tell it the lab's NLB and VPC."""
    return ["--nlb-ip", addresses.NLB_IP, "--vpc", addresses.VPC_CIDR]


def start_tcpdump(output: Path, bpf: str, *, interface: str = "lo") -> subprocess.Popen[bytes]:
    """tcpdump writing ``output``, returned once it listens (it says so on stderr)."""
    tcpdump = shutil.which("tcpdump") or next((p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump")
                                                if Path(p).exists()), None)
    if tcpdump is None:
        raise LabError("tcpdump is not installed", hint="run scripts/install-system-deps (Debian package tcpdump)")
    proc = subprocess.Popen([tcpdump, "-i", interface, "-U", "-s", "0", "-w", str(output), bpf],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + TCPDUMP_READY_TIMEOUT_S
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # "tcpdump: listening on lo, link-type EN10MB ..." or an error
        seen += line
        if b"listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    stop_tcpdump(proc)
    raise LabError(f"tcpdump did not start: {seen.decode(errors='replace').strip() or 'no message'}",
                   hint="capturing needs root or CAP_NET_RAW/CAP_NET_ADMIN (e.g. `setcap "
                        "cap_net_raw,cap_net_admin=eip $(which tcpdump)`)")


def stop_tcpdump(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (tcpdump then flushes and closes the file), SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stderr is not None:
        proc.stderr.close()


def capture_scenario(endpoints: dict[str, Any], output: Path, *, min_seconds: float = MIN_CAPTURE_S) -> dict:
    """Capture while every probe runs against the running lab ``endpoints``; returns a summary."""
    from ..config import load_config
    from ..probes import run_probes

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    config = load_config(endpoints["config"], env={})
    proc = start_tcpdump(output, capture_filter(endpoints))
    started = time.monotonic()
    try:
        observations = asyncio.run(run_probes(config))
        rest = min_seconds - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)  # health checks run on the lab's own clock; nothing to poll for
    finally:
        stop_tcpdump(proc)
    return {"file": str(output), "scenario": endpoints.get("scenario"), "probes": len(observations),
            "pcap_arguments": pcap_arguments(endpoints)}
