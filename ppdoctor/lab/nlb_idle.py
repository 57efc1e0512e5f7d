"""The lab NLB's idle timeout: a flow silent for longer than the listener's idle timeout is reset.

"Network Load Balancers" → "Connection idle timeout": for each TCP request the NLB keeps the
connection state; when neither side sends data (or a TCP keepalive) for the idle timeout
(``tcp.idle_timeout.seconds`` on the listener, default 350 s, 60–6000 s), it forgets the flow, and
a segment sent after that is answered with a TCP RST. Reported against Istio gateways:
istio/istio #16572, #28879, #52143. The lab compresses time by ``LAB_IDLE_TIMEOUT_SCALE`` (the
default 350 s becomes 17.5 s, a 60 s listener 3 s), and the lab's config carries the same factor
(``nlb.time_scale``) so probes wait the scaled time. TCP keepalive probes are kernel segments the
emulator's user-space splice cannot see, so keepalive does not hold a lab flow open: the lab
follows the document here and cannot verify a keepalive fix (docs/lab-aws.md).
"""

from __future__ import annotations

# Lab time compression for the NLB idle timeout (documented in docs/lab-aws.md).
LAB_IDLE_TIMEOUT_SCALE = 0.05


def idle_expired(last_activity: float, now: float, idle_timeout_seconds: float, scale: float) -> bool:
    """Has the flow been silent longer than the (scaled) idle timeout?"""
    return now - last_activity > idle_timeout_seconds * scale
