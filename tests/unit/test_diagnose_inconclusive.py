"""No finding is not "healthy": `diagnose` exits 3 and says which probes could not find out, and what to do."""

from __future__ import annotations

from ppdoctor.diagnosis.cli import print_findings
from ppdoctor.diagnosis.engine import INCONCLUSIVE, diagnose, exit_code
from ppdoctor.probes.model import Observation, Status


def _denied() -> Observation:
    obs = Observation("aws-tg", status=Status.ERROR,
                      summary="AccessDenied on elasticloadbalancing:DescribeTargetGroupAttributes\x1b[2J")
    obs.error = {"kind": "aws", "message": "AccessDenied", "hint": "grant elasticloadbalancing:Describe*"}
    return obs


def test_no_observation_decides_nothing_and_exits_3():
    findings = diagnose({})
    assert findings == []
    assert exit_code(findings) == INCONCLUSIVE == 3


def test_the_blocked_probes_and_the_next_step_are_printed(capsys):
    skipped = Observation("syn", status=Status.SKIPPED, summary="needs CAP_NET_RAW")
    ok = Observation("tcp", status=Status.OK, summary="connected")
    print_findings([], observations=[_denied(), skipped, ok])
    out = capsys.readouterr().out
    assert "no finding" in out and "exit status 3" in out
    assert "error: aws-tg: AccessDenied on elasticloadbalancing:DescribeTargetGroupAttributes\\x1b[2J" in out
    assert "\x1b" not in out  # remote text cannot drive the terminal
    assert "→ grant elasticloadbalancing:Describe*" in out
    assert "skipped: syn: needs CAP_NET_RAW" in out
    assert "tcp" not in out  # what worked is not a reason
    assert "diagnose again" in out
