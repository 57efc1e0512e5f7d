"""Real captures of lab scenarios (tcpdump on loopback while the probes run) decide the scenario's cause.

One capture per scenario, grouped so each lab starts once from the shared pool. The NLB's address
and the VPC are given as an operator would (``--nlb-ip``, ``--vpc``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ppdoctor.lab.addresses import NLB_IP, VPC_CIDR
from ppdoctor.lab.capture import capture_scenario
from ppdoctor.pcap import analyze

pytestmark = pytest.mark.lab

PPDOCTOR = str(Path(sys.executable).with_name("ppdoctor"))


def _capture(lab_pool, scenario: str, tmp_path: Path):
    lab = lab_pool.get(scenario)
    out = tmp_path / f"{scenario}.pcap"
    capture_scenario(lab.endpoints, out)
    return lab, analyze(str(out), nlb_ips=[NLB_IP], vpcs=[VPC_CIDR])


def _errors(result) -> set[str]:
    return {f.id for f in result.findings if f.severity == "error"}


@pytest.mark.parametrize("scenario, expected", [
    ("tg-pp-on-gateway-off", "PPD003"),
    ("gateway-pp-tg-off", "PPD004"),
    ("no-client-ip", "PPD001"),
])
def test_capture_decides_the_scenario(lab_pool, tmp_path, scenario, expected):
    lab, result = _capture(lab_pool, scenario, tmp_path)
    assert _errors(result) == {expected}, [f.as_dict() for f in result.findings]
    finding = next(f for f in result.findings if f.id == expected)
    gateway = lab.endpoints["gateway"]
    # the evidence is the NLB's own connections to the gateway's traffic port
    assert any(e["client"].startswith(NLB_IP + ":") and e["server"] == gateway for e in finding.evidence)
    assert result.health_checks > 0


def test_preserve_on_nat_decides_nothing_false(lab_pool, tmp_path):
    """The lab's NLB terminates the client's TCP itself and black-holes the flow, so no SYN retransmit and no
    foreign SYN-ACK reach the wire (a real NLB passes the SYN on): PPD002 is not visible; nothing else may fire."""
    lab, result = _capture(lab_pool, "preserve-on-nat", tmp_path)
    assert _errors(result) == set()
    nlb = lab.endpoints["nlb"]
    to_nlb = [r for r in result.table if r["server"] == nlb and r["first_bytes"] == "http"]
    assert to_nlb and all(r["answer"] == "none" for r in to_nlb)


def test_healthy_capture_through_the_cli(lab_pool, tmp_path):
    lab = lab_pool.get("healthy")
    lab.wait_health("healthy")
    out = tmp_path / "healthy.pcap"
    done = subprocess.run([PPDOCTOR, "lab", "capture", "--state-dir", str(lab.state_dir), "-o", str(out), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    args = json.loads(done.stdout)["pcap_arguments"]
    rep = subprocess.run([PPDOCTOR, "pcap", str(out), "--json", *args], capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    report = json.loads(rep.stdout)
    assert report["findings"] == []
    assert report["summary"]["first_bytes"]["ppv2-proxy"] > 0 and report["summary"]["answer"]["http-2xx"] > 0
    assert report["health_checks"] > 0
