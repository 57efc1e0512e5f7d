"""TCP flow tracking: handshake state, the first bytes of each direction reassembled, 5-tuple reuse.

Memory is bounded by the number of open flows (``max_open``, oldest evicted first) times the
prefix kept per direction (``CLIENT_PREFIX`` / ``SERVER_PREFIX``); a finished flow is handed to
``on_done`` and forgotten, except its 4-tuple in a bounded "recently closed" table so that its
last ACKs do not open a phantom flow.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from .reader import ACK, FIN, RST, SYN, read_batches

__all__ = ["Flow", "FlowTracker", "CLIENT_PREFIX", "SERVER_PREFIX", "MAX_OPEN_FLOWS"]

#: Bytes of the client's stream kept: a PROXY v2 header with TLVs plus a TLS ClientHello
#: (≈1.8 KB with post-quantum key shares) fit.
CLIENT_PREFIX = 4096
#: Bytes of the server's stream kept: enough for the status line.
SERVER_PREFIX = 64
MAX_OPEN_FLOWS = 100_000
#: Recently closed 4-tuples remembered, so a flow's last ACKs and retransmitted FINs do not open a
#: phantom flow; they arrive within round trips, while thousands of other flows close at most.
CLOSED_KEPT = 16_384
_MAX_PIECES = 64  # segments kept per direction before the prefix is complete (retransmit storms)
_HALF = 1 << 31


class Flow:
    """One TCP connection as seen in the capture; client = the side that sent the SYN."""

    __slots__ = (
        "client", "cport", "server", "sport", "first_ts", "syns", "syn_isn", "synack", "synack_from",
        "acked", "mid_stream", "c_base", "s_base", "c_pieces", "s_pieces", "c_have", "s_have", "c_fin",
        "s_fin", "c_rst", "s_rst", "packets", "cut", "ooo",
    )

    def __init__(self, client: bytes, cport: int, server: bytes, sport: int, ts: float) -> None:
        self.client, self.cport, self.server, self.sport = client, cport, server, sport
        self.first_ts = ts
        self.syns = 0
        self.syn_isn = -1
        self.synack = False
        self.synack_from: bytes | None = None  # another address answered the SYN (asymmetric return)
        self.acked = False
        self.mid_stream = False
        self.c_base = -1
        self.s_base = -1
        self.c_pieces: list[tuple[int, bytes]] = []
        self.s_pieces: list[tuple[int, bytes]] = []
        self.c_have = 0  # highest contiguous-or-not end offset seen (a cheap "prefix complete" test)
        self.s_have = 0
        self.c_fin = self.s_fin = self.c_rst = self.s_rst = False
        self.packets = 0
        self.cut = False
        self.ooo = False  # a client segment arrived before one it follows

    def client_bytes(self) -> bytes:
        return _assemble(self.c_pieces, CLIENT_PREFIX)

    def server_bytes(self) -> bytes:
        return _assemble(self.s_pieces, SERVER_PREFIX)


def _assemble(pieces: list[tuple[int, bytes]], limit: int) -> bytes:
    """The contiguous prefix from offset 0 of out-of-order, possibly overlapping pieces."""
    if not pieces:
        return b""
    if len(pieces) == 1:
        off, data = pieces[0]
        return data[:limit] if off == 0 else b""
    out = bytearray()
    for off, data in sorted(pieces):
        have = len(out)
        if off > have:
            break
        if off + len(data) > have:
            out += data[have - off:]
        if len(out) >= limit:
            break
    return bytes(out[:limit])


class FlowTracker:
    """Feed segments with ``feed``; finished flows go to ``on_done(flow)``; ``close()`` flushes the rest.

    ``ports``: only flows to these server ports are tracked (None: all).
    """

    def __init__(self, on_done: Callable[[Flow], None], *, ports: Iterable[int] | None = None,
                 max_open: int = MAX_OPEN_FLOWS) -> None:
        self.on_done = on_done
        self.ports = frozenset(ports) if ports else None
        self.max_open = max_open
        self.closed_kept = min(CLOSED_KEPT, max_open)
        self.flows: dict[tuple, tuple[Flow, bool]] = {}  # 4-tuple (either direction) → (flow, from client)
        self.pending: dict[tuple, Flow] = {}  # (client, cport, sport) → flow waiting for its SYN-ACK
        self.closed: OrderedDict[tuple, None] = OrderedDict()
        self.servers: set[tuple[bytes, int]] = set()  # endpoints SYNs went to (bounded)
        self.open_count = 0
        self.peak_open = 0
        self.evicted = 0

    def feed(self, segs: Iterable[tuple]) -> None:
        """Track segments (reader tuples) in capture order."""
        self.feed_batches((segs,))

    def feed_file(self, path: str, stats) -> None:
        """Track the segments of the capture at ``path``: for pcap the reader updates the flows from its
        own loop (one pass, no segment tuples, bare ACKs of known flows handled inline); pcapng in batches."""
        self.feed_batches(read_batches(path, stats, track=self))

    def feed_batches(self, batches: Iterable[Iterable[tuple]]) -> None:
        """Track lists of segments (``read_batches``): the inner loop runs over a list, not a generator."""
        for segs in batches:
            self._feed(segs)

    def _feed(self, segs: Iterable[tuple]) -> None:
        one = self.one
        for ts, src, dst, sport, dport, seq, _ack, flags, payload, cut in segs:
            one(ts, src, dst, sport, dport, seq, flags, payload, cut)

    def one(self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int,
            payload: bytes, cut: bool) -> None:
        """Track one segment. The pcap reader calls this from its own loop (``feed_file``), after handling
        a bare ACK of a known flow itself (flows.py's bare-ACK rule, kept identical there)."""
        flows = self.flows
        ports = self.ports
        hit = flows.get((src, sport, dst, dport))
        if hit is None:
            if flags & SYN and not flags & ACK:
                if ports is None or dport in ports:
                    self._start(src, sport, dst, dport, ts, seq)
                    return
                return
            if flags & SYN:  # a SYN-ACK for no known SYN: from another address?
                flow = self.pending.get((dst, dport, sport))
                if flow is not None and flow.synack_from is None and flow.server != src:
                    flow.synack_from = src
                return
            if flags & RST or (src, sport, dst, dport) in self.closed or (dst, dport, src, sport) in self.closed:
                return
            # No SYN seen: the capture started mid-connection. The server is the --port side, else
            # an endpoint that received SYNs, else the lower port (ephemeral ports are high).
            servers = self.servers
            if ports is None and (dst, dport) in servers:
                flow = self._new(src, sport, dst, dport, ts)
            elif ports is None and (src, sport) in servers:
                flow = self._new(dst, dport, src, sport, ts)
            elif ports is not None:
                if dport in ports:
                    flow = self._new(src, sport, dst, dport, ts)
                elif sport in ports:
                    flow = self._new(dst, dport, src, sport, ts)
                else:
                    return
            elif dport <= sport:
                flow = self._new(src, sport, dst, dport, ts)
            else:
                flow = self._new(dst, dport, src, sport, ts)
            flow.mid_stream = True
            hit = flows[(src, sport, dst, dport)]
        flow, from_client = hit
        flow.packets += 1
        if not payload and not flags & 0x07:  # a bare ACK, most of a capture: only the handshake's last one counts
            if from_client and not flow.acked and flow.synack:
                flow.acked = True
            return
        if cut:
            flow.cut = True
        if from_client:
            if flags & SYN:
                if flow.syn_isn == seq and not flow.c_pieces and not flow.c_fin:
                    flow.syns += 1  # retransmitted SYN
                    return
                if flow.acked or flow.c_fin or flow.c_rst or flow.s_rst or flow.c_pieces:
                    self._finish(flow)  # 5-tuple reuse: a new connection from the same port
                    self._start(src, sport, dst, dport, ts, seq)
                    return
                flow.syns += 1
                flow.syn_isn = seq
                flow.c_base = (seq + 1) & 0xFFFFFFFF
                return
            if not flow.acked and flags & ACK and flow.synack:
                flow.acked = True
            if payload:
                base = flow.c_base
                if base < 0:
                    base = flow.c_base = seq
                rel = (seq - base) & 0xFFFFFFFF
                if rel < _HALF:
                    if rel > flow.c_have:
                        flow.ooo = True
                    end = rel + len(payload)
                    if end > flow.c_have:
                        flow.c_have = end
                    if rel < CLIENT_PREFIX and len(flow.c_pieces) < _MAX_PIECES:
                        flow.c_pieces.append((rel, payload[: CLIENT_PREFIX - rel]))
            if flags & FIN:
                flow.c_fin = True
            if flags & RST:
                flow.c_rst = True
                self._finish(flow)
            elif flow.c_fin and flow.s_fin:
                self._finish(flow)
        else:
            if flags & SYN:
                flow.synack = True
                flow.s_base = (seq + 1) & 0xFFFFFFFF
                self.pending.pop((flow.client, flow.cport, flow.sport), None)
                return
            if payload:
                base = flow.s_base
                if base < 0:
                    base = flow.s_base = seq
                rel = (seq - base) & 0xFFFFFFFF
                if rel < _HALF:
                    end = rel + len(payload)
                    if end > flow.s_have:
                        flow.s_have = end
                    if rel < SERVER_PREFIX and len(flow.s_pieces) < _MAX_PIECES:
                        flow.s_pieces.append((rel, payload[: SERVER_PREFIX - rel]))
            if flags & FIN:
                flow.s_fin = True
            if flags & RST:
                flow.s_rst = True
                self._finish(flow)
            elif flow.c_fin and flow.s_fin:
                self._finish(flow)

    def _new(self, client: bytes, cport: int, server: bytes, sport: int, ts: float) -> Flow:
        flow = Flow(client, cport, server, sport, ts)
        self.flows[(client, cport, server, sport)] = (flow, True)
        self.flows[(server, sport, client, cport)] = (flow, False)
        self.open_count = n = self.open_count + 1
        if n > self.peak_open:
            self.peak_open = n
        if n > self.max_open:
            self._evict()
        return flow

    def _start(self, src: bytes, sport: int, dst: bytes, dport: int, ts: float, seq: int) -> None:
        # _new inlined: one of these per connection of the capture
        flow = Flow(src, sport, dst, dport, ts)
        flows = self.flows
        flows[(src, sport, dst, dport)] = (flow, True)
        flows[(dst, dport, src, sport)] = (flow, False)
        flow.syns = 1
        flow.syn_isn = seq
        flow.c_base = (seq + 1) & 0xFFFFFFFF
        flow.packets = 1
        self.pending[(src, sport, dport)] = flow
        servers = self.servers
        if len(servers) < 65536:
            servers.add((dst, dport))
        self.open_count = n = self.open_count + 1
        if n > self.peak_open:
            self.peak_open = n
        if n > self.max_open:
            self._evict()

    def _evict(self) -> None:
        """Finish the oldest tenth of the open flows (dicts keep insertion order). In bulk, because
        finding the first live entry of a dict with deletions at its front is a scan."""
        batch = []
        seen = set()
        for flow, _ in self.flows.values():
            if id(flow) not in seen:
                seen.add(id(flow))
                batch.append(flow)
                if len(batch) >= max(1, self.max_open // 10):
                    break
        for flow in batch:
            self.evicted += 1
            self._finish(flow)

    def _finish(self, flow: Flow) -> None:
        client, cport, server, sport = flow.client, flow.cport, flow.server, flow.sport
        a = (client, cport, server, sport)
        flows = self.flows
        if flows.pop(a, None) is None:
            return
        del flows[(server, sport, client, cport)]
        if not flow.synack:
            self.pending.pop((client, cport, sport), None)
        self.open_count -= 1
        closed = self.closed
        closed[a] = None  # the client → server direction only; a stray packet is looked up both ways
        if len(closed) > self.closed_kept:
            closed.popitem(last=False)
        self.on_done(flow)

    def close(self) -> None:
        """Finish every open flow (end of the capture)."""
        for flow, from_client in list(self.flows.values()):
            if from_client:
                self._finish(flow)
