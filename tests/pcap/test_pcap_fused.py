"""The pcap reader's fused loop (FlowTracker.feed_file) tracks exactly what the tuple path does.

feed_file lets the reader handle a bare ACK of a known flow and the last ACK of a finished flow inline;
these rules copy FlowTracker.one's, so random conversations (reuse of a 4-tuple, resets, FINs, ACKs after
the close, data out of order, a capture starting mid-connection) must give the same finished flows both ways.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppdoctor.pcap.flows import FlowTracker
from ppdoctor.pcap.reader import ReadStats, read_batches

from .capbuild import ACK, FIN, FRAMERS, PSH, RST, SYN, pcap, tcp_ip

_CLIENTS = [("10.0.1.23", 40000), ("10.0.1.23", 40001), ("10.0.1.24", 40000)]
_SERVER = ("10.0.2.10", 8080)
# (from the client?, flags, payload length)
_ACTIONS = [(True, SYN, 0), (False, SYN | ACK, 0), (True, ACK, 0), (False, ACK, 0), (True, ACK | PSH, 30),
            (False, ACK | PSH, 20), (True, FIN | ACK, 0), (False, FIN | ACK, 0), (True, RST, 0),
            (False, RST | ACK, 0)]


def _frames(events) -> list[tuple[float, bytes]]:
    seqs = {c: [1000, 5000] for c in _CLIENTS}
    out, t = [], 1_700_000_000.0
    for ci, ai, skew in events:
        client = _CLIENTS[ci]
        from_client, flags, n = _ACTIONS[ai]
        cs, ss = seqs[client]
        if from_client:
            src, dst, seq, ack = client, _SERVER, cs + skew, ss
            seqs[client][0] = cs + n + (1 if flags & (SYN | FIN) else 0)
        else:
            src, dst, seq, ack = _SERVER, client, ss + skew, cs
            seqs[client][1] = ss + n + (1 if flags & (SYN | FIN) else 0)
        t += 0.001
        out.append((t, tcp_ip(src[0], dst[0], src[1], dst[1], seq, ack, flags, bytes(range(n)))))
    return out


def _flows(path: str, fused: bool) -> list[tuple]:
    done = []
    tracker = FlowTracker(done.append)
    if fused:
        tracker.feed_file(path, ReadStats())
    else:
        tracker.feed_batches(read_batches(path, ReadStats()))
    tracker.close()
    return [tuple(getattr(f, name) for name in f.__slots__ if not name.endswith("_pieces"))
            + (f.client_bytes(), f.server_bytes()) for f in done]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(st.integers(0, len(_CLIENTS) - 1), st.integers(0, len(_ACTIONS) - 1),
                                 st.sampled_from([0, 0, 0, 10, -5])), max_size=60),
       linktype=st.sampled_from([1, 113, 276, 101]))
def test_fused_loop_tracks_what_the_tuple_path_tracks(events, linktype):
    frames = [(t, FRAMERS[linktype](f)) for t, f in _frames(events)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.pcap"
        path.write_bytes(pcap(frames, linktype))
        assert _flows(str(path), True) == _flows(str(path), False)


def test_bare_acks_are_counted_and_complete_the_handshake_in_the_fused_loop():
    """A fixed conversation: the inline ACK path counts packets, sets ``acked``, and drops the last ACK."""
    events = [(0, 0, 0), (0, 1, 0), (0, 2, 0), (0, 4, 0), (0, 3, 0), (0, 5, 0), (0, 6, 0), (0, 7, 0), (0, 2, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.pcap"
        path.write_bytes(pcap([(t, FRAMERS[1](f)) for t, f in _frames(events)]))
        flows = []
        tracker = FlowTracker(flows.append)
        tracker.feed_file(str(path), ReadStats())
        tracker.close()
    assert len(flows) == 1
    flow = flows[0]
    assert flow.acked and flow.synack and flow.c_fin and flow.s_fin
    assert flow.packets == 8  # the ACK after both FINs belongs to no open flow
    assert flow.client_bytes() == bytes(range(30)) and flow.server_bytes() == bytes(range(20))
