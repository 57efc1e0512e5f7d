"""The client path in front of the NLB (nlb.client_headers): what a CDN there adds to the probes' requests."""

from __future__ import annotations

import pytest

from ppdoctor.config import NlbTarget, TargetConfig
from ppdoctor.probes.clientpath import client_path_headers, end_client, hops_in_front


def cfg(*lines: str) -> TargetConfig:
    return TargetConfig(nlb=NlbTarget(client_headers=lines))


@pytest.mark.parametrize("lines,own,want", [
    ((), [], []),
    (("X-Forwarded-For: 203.0.113.50",), [], [("X-Forwarded-For", "203.0.113.50")]),
    # an appending proxy: the request's own entries first, the hop's entry after them
    (("X-Forwarded-For: 203.0.113.50",), [("X-Forwarded-For", "198.51.100.66")],
     [("X-Forwarded-For", "198.51.100.66, 203.0.113.50")]),
    (("CloudFront-Viewer-Address: 203.0.113.50:1", "no colon here"), [("Accept", "x")],
     [("Accept", "x"), ("CloudFront-Viewer-Address", "203.0.113.50:1")]),
])
def test_client_path_headers(lines, own, want):
    assert client_path_headers(cfg(*lines), own) == want


def test_hops_and_end_client():
    assert hops_in_front(cfg()) == 0 and end_client(cfg()) is None
    two = cfg("X-Forwarded-For: 203.0.113.50, 198.51.100.9")
    assert hops_in_front(two) == 2 and end_client(two) == "203.0.113.50"
