"""The lab's Network Load Balancer: an asyncio TCP front that behaves as the target group says.

Every decision comes from the live AWS state (``aws.read_live_state``), read over HTTP from
the lab's moto server, so a change made through boto3 changes behaviour within one poll
interval. Reading costs ~13 ms of CPU (four moto requests), so the emulator reads only when
someone else has talked to moto since its last read (``MotoServer.activity``) and otherwise
once every ``full_refresh_interval``; see "Idle cost" in docs/lab-aws.md.

- ``proxy_protocol_v2.enabled``: one PPv2 PROXY header (client → NLB listener address, plus
  AWS's 0xEA TLV for PrivateLink clients) before the client's first byte; health checks
  open with a PPv2 LOCAL header.
- ``preserve_client_ip.enabled``: when the target's reply would not come back through the
  NLB (private default route → NAT gateway for an internet client, or a client inside the
  VPC: hairpin), the connection is a black hole — accepted, never answered. Otherwise the
  target sees the client's own address as the socket peer.
- health checks (TCP / HTTP / HTTPS, port, path, matcher, interval, thresholds) run from the
  NLB's private IP and their verdict is what DescribeTargetHealth reports.

Time is compressed: health-check intervals are multiplied by ``hc_interval_scale`` (0.1:
the AWS default 10 s interval becomes 1 s). See docs/lab-aws.md for what is not emulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..constants import ATTR_CONNECTION_TERMINATION
from ..errors import LabError
from ..proxyproto import local_v2, proxy_v2
from . import addresses
from .aws import (
    EMULATOR_USER_AGENT,
    HEALTH_FAILED,
    HEALTH_HEALTHY,
    HEALTH_INITIAL,
    AwsClients,
    AwsWorld,
    HealthCheckSettings,
    LiveState,
    LiveTarget,
    MotoServer,
    TargetHealthRecord,
    in_cidr,
    read_live_state,
)
from .nlb_family import ipv6_flow_mode
from .nlb_drain import Deregistrations, deregistration_delay
from .nlb_idle import idle_expired
from .nlb_placement import header_on_connect
from .nlb_security import nlb_admits, target_admits

log = logging.getLogger(__name__)

# The NLB's default TCP idle timeout, 350 s (AWS docs "Network Load Balancers", connection
# idle timeout). The lab keeps a black-holed connection this long, then resets it.
NLB_IDLE_TIMEOUT = 350.0
# What AWS's health checker sends as User-Agent on HTTP(S) checks.
HEALTH_CHECK_USER_AGENT = "ELB-HealthChecker/2.0"
# A scaled health-check timeout never drops below this: loopback is fast, Python is not.
MIN_HC_TIMEOUT = 0.25
# With nothing but the emulator talking to moto, the state is still read this often: a safety
# net only, since everything the emulator reads changes through moto's API.
FULL_REFRESH_INTERVAL = 10.0
_READ_SIZE = 65536


@dataclass
class NlbStats:
    """Counters for the lab supervisor's status line."""

    connections: int = 0
    active: int = 0
    forwarded: int = 0
    blackholed: int = 0
    blackholed_active: int = 0
    sg_dropped: int = 0
    idle_resets: int = 0
    to_deregistered: int = 0  # new flows sent to a target deregistered moments ago (lab/nlb_drain.py)
    deregistration_resets: int = 0  # open flows closed at the end of the delay (connection termination on)
    pp_headers_sent: int = 0
    resets_to_client: int = 0
    tls_failures: int = 0  # TLS handshakes (listener or target side) that failed
    target_connect_failures: int = 0
    health_checks: int = 0
    health_check_failures: int = 0
    poll_errors: int = 0
    # "ip:port" → {"state", "reason", "last_result"}
    health: dict[str, dict[str, str | None]] = field(default_factory=dict)
    draining: tuple[str, ...] = ()  # "ip:port" of deregistered targets still draining

    def snapshot(self) -> "NlbStats":
        return replace(self, health={k: dict(v) for k, v in self.health.items()})


@dataclass(frozen=True)
class HealthCheckResult:
    ok: bool
    detail: str  # "connected", "HTTP 200", "HTTP 400 not in 200-399", "connect: timeout", "tls: …"


def codes_match(matcher: str, code: int) -> bool:
    """Does an HTTP status match a target-group Matcher HttpCode ("200", "200-399", "200,202")?"""
    for part in matcher.replace(" ", "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            if int(low) <= code <= int(high or low):
                return True
        except ValueError:
            continue
    return False


def return_path(state: LiveState, client_ip: str, vpc_cidr: str) -> str:
    """How a client's connection travels: "nlb" (source NAT to the NLB's IP), "preserved"
    (target sees the client's address, replies come back through the NLB) or "blackhole"
    (target sees the client's address, its replies leave by another way)."""
    if not state.preserve_client_ip:
        return "nlb"
    if in_cidr(client_ip, vpc_cidr):
        return "blackhole"  # hairpin / same VPC: the target answers the client directly
    if state.private_default_route != "igw":
        return "blackhole"  # NAT gateway (or no way out): the reply never reaches the client
    return "preserved"


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with SO_LINGER 0, so the peer gets a TCP RST rather than a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


class _Side(asyncio.Protocol):
    """One TCP connection of a spliced flow; events go to the flow."""

    def __init__(self, flow: "_Flow") -> None:
        self.flow = flow
        self.transport: asyncio.Transport | None = None
        self.got_eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.flow.side_data(self, data)

    def eof_received(self) -> bool:
        self.got_eof = True
        self.flow.side_eof(self)
        return True  # keep the transport: half-close, the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.flow.side_lost(self, exc)

    # Backpressure: when this side's send buffer is full, stop reading the other side.
    def pause_writing(self) -> None:
        other = self.flow.other(self)
        if other is not None and other.transport is not None and not other.lost:
            other.transport.pause_reading()

    def resume_writing(self) -> None:
        other = self.flow.other(self)
        if other is not None and other.transport is not None and not other.lost:
            other.transport.resume_reading()


class _Flow:
    """A client connection and what the NLB does with it."""

    def __init__(self, nlb: "NlbEmulator") -> None:
        self.nlb = nlb
        self.client = _Side(self)
        self.target: _Side | None = None
        self.mode = "pending"
        self.client_addr: tuple[str, int] = ("", 0)
        self.listener_addr: tuple[str, int] = ("", 0)  # the NLB address the client connected to
        self.last_activity = 0.0  # loop time of the last data either way (idle timeout)
        self.pending_header: bytes | None = None  # PROXY header waiting for the client's first data
        self.task: asyncio.Task[None] | None = None
        self.cap_timer: asyncio.TimerHandle | None = None
        self.finished = False
        self.target_key: tuple[str, int] | None = None  # (target id, port) once connected

    def other(self, side: _Side) -> _Side | None:
        return self.target if side is self.client else self.client

    # events

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            self.nlb._flow_started(self)
        else:
            self.target = side

    def side_data(self, side: _Side, data: bytes) -> None:
        if self.mode == "blackhole":
            return  # read and dropped: nothing ever comes back
        now = asyncio.get_running_loop().time()
        if self.nlb._idle_expired(self, now):
            # The NLB forgot this flow: the segment is answered with a reset, both ways.
            self.nlb._stats.idle_resets += 1
            self.nlb._stats.resets_to_client += 1
            self.abort()
            return
        self.last_activity = now
        other = self.other(side)
        if side is self.client and self.pending_header is not None:
            data, self.pending_header = self.pending_header + data, None
        if other is not None and other.transport is not None and not other.lost:
            other.transport.write(data)

    def side_eof(self, side: _Side) -> None:
        if self.mode == "blackhole":
            self.finish()
            return
        other = self.other(side)
        if side is self.client and self.pending_header is not None and other is not None and other.transport is not None:
            other.transport.write(self.pending_header)  # a FIN before any data: the header still goes first
            self.pending_header = None
        if other is not None and other.transport is not None and not other.lost:
            if other.transport.can_write_eof():
                with contextlib.suppress(OSError):
                    other.transport.write_eof()
        if self.client.got_eof and self.target is not None and self.target.got_eof:
            self.finish()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        other = self.other(side)
        if other is not None and not other.lost:
            if exc is not None:
                # A reset (or any error) on one side is a reset on the other.
                if other is self.client:
                    self.nlb._stats.resets_to_client += 1
                _reset(other.transport)
            elif other.transport is not None:
                other.transport.close()
        if side is self.client and self.task is not None and not self.task.done():
            self.task.cancel()  # still connecting to the target
        self.finish()

    # outcomes

    def blackhole(self, cap: float) -> None:
        self.mode = "blackhole"
        self.cap_timer = asyncio.get_running_loop().call_later(cap, self.abort)

    def finish(self) -> None:
        if self.cap_timer is not None:
            self.cap_timer.cancel()
            self.cap_timer = None
        for side in (self.client, self.target):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        if not self.finished:
            self.finished = True
            self.nlb._flow_finished(self)

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for side in (self.client, self.target):
            if side is not None and side.transport is not None:
                _reset(side.transport)
        self.finish()


class _TargetHealth:
    """The health-check state machine of one target (thresholds of consecutive results)."""

    def __init__(self) -> None:
        self.record: TargetHealthRecord = HEALTH_INITIAL
        self.successes = 0
        self.failures = 0
        self.last: HealthCheckResult | None = None

    def observe(self, result: HealthCheckResult, hc: HealthCheckSettings) -> None:
        self.last = result
        if result.ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= hc.healthy_threshold:
                self.record = HEALTH_HEALTHY
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= hc.unhealthy_threshold:
                self.record = HEALTH_FAILED


class NlbEmulator:
    """One NLB listener forwarding to the lab's target group, driven by moto's state.

    ``listen_host``/``listen_port``: where clients connect (port 0: a free one, see
    ``address``). ``vpc_cidr``: clients inside it are hairpin clients (default: the world's
    VPC). ``poll_interval``: seconds between looks for a change; the AWS state is read when
    ``moto`` (serving ``endpoint_url``) has answered anyone else since the last read, or
    ``full_refresh_interval`` seconds have passed, or the last read failed; with another
    endpoint it is read at every look. ``hc_interval_scale``:
    health-check interval and timeout multiplier. ``vpc_endpoint_id``: clients arrive over
    PrivateLink through this endpoint. ``idle_timeout``: how long a black-holed connection is
    kept before it is reset. ``connect_timeout``: for connections to the target.
    ``listen_host_v6``: also listen there (e.g. ``::1``) for IPv6 clients, who get an answer
    only while the load balancer is dualstack (``address_v6``).
    ``idle_timeout_scale``: multiplier for the listener's ``tcp.idle_timeout.seconds`` after which
    a silent flow is reset (lab/nlb_idle.py).
    ``privatelink``: clients arrive through the interface endpoint of the NLB's endpoint
    service (the world's): preservation has no effect and the TLV carries that endpoint's id.
    """

    def __init__(
        self,
        endpoint_url: str,
        world: AwsWorld,
        moto: MotoServer,
        *,
        listen_host: str = addresses.NLB_IP,
        listen_port: int = 0,
        vpc_cidr: str | None = None,
        poll_interval: float = 0.5,
        full_refresh_interval: float = FULL_REFRESH_INTERVAL,
        hc_interval_scale: float = 0.1,
        vpc_endpoint_id: str | None = None,
        idle_timeout: float = NLB_IDLE_TIMEOUT,
        connect_timeout: float = 10.0,
        privatelink: bool = False,
        listen_host_v6: str | None = None,
        idle_timeout_scale: float = 1.0,
        tls_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.world = world
        self.moto = moto
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.vpc_cidr = vpc_cidr or world.vpc_cidr
        self.poll_interval = poll_interval
        self.full_refresh_interval = full_refresh_interval
        self.hc_interval_scale = hc_interval_scale
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._vpc_endpoint_id = vpc_endpoint_id
        self.privatelink = privatelink
        self.listen_host_v6 = listen_host_v6
        self.idle_timeout_scale = idle_timeout_scale
        # The TLS listener's certificate and key (the pair imported into moto's ACM): used when the
        # live listener protocol is TLS (nlb_tls.py).
        self.tls_cert = tls_cert
        self._server_v6: asyncio.Server | None = None
        self._address_v6: tuple[str, int] | None = None
        self._state: LiveState | None = None
        self._stats = NlbStats()
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._clients: AwsClients | None = None
        self._poller: asyncio.Task[None] | None = None
        self._checkers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._health: dict[tuple[str, int], _TargetHealth] = {}
        self._flows: set[_Flow] = set()
        self._rr = 0
        self._deregistrations = Deregistrations(idle_timeout_scale)
        self._delay_timers: set[asyncio.TimerHandle] = set()
        self._poll_failing = False
        self._stopping = False
        self._reads = 0
        self._read_activity: int | None = None  # moto's activity count when the state was last read
        self._read_at = 0.0

    # --- public surface ---------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise LabError("the lab NLB has not been started")
        return self._address

    @property
    def address_v6(self) -> tuple[str, int] | None:
        """The IPv6 listener's address (``listen_host_v6``), None without one."""
        return self._address_v6

    @property
    def state(self) -> LiveState | None:
        """The last live state read from moto."""
        return self._state

    @property
    def stats(self) -> NlbStats:
        snap = self._stats.snapshot()
        if self._server is not None:
            snap.draining = tuple(self.draining())
        return snap

    @property
    def reads(self) -> int:
        """How many times the AWS state has been read from moto."""
        return self._reads

    @property
    def vpc_endpoint_id(self) -> str | None:
        return self._vpc_endpoint_id

    def set_vpc_endpoint_id(self, value: str | None) -> None:
        """Clients arrive over PrivateLink through this endpoint (PP header gets TLV 0xEA), or not."""
        self._vpc_endpoint_id = value

    def target_health(self, target_id: str, port: int) -> TargetHealthRecord:
        checker = self._health.get((target_id, int(port)))
        return checker.record if checker else HEALTH_INITIAL

    async def start(self) -> None:
        if self._server is not None:
            return
        self._stopping = False
        # moto lists a deregistered target as draining for the delay in this emulator's time (aws_health.py)
        self.moto.set_time_scale(self.world.tg_arn, self.idle_timeout_scale)
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ppdoctor-nlb-poll")
        try:
            self._clients = await loop.run_in_executor(
                self._executor,
                lambda: AwsClients.connect(self.endpoint_url, self.world.region, user_agent_extra=EMULATOR_USER_AGENT),
            )
            await self.refresh()
        except Exception as exc:
            self._shutdown_executor()
            if isinstance(exc, LabError):
                raise
            raise LabError(
                f"the lab NLB cannot read its target group from moto at {self.endpoint_url}: {exc}",
                hint="is the lab's moto server running and seeded?",
            ) from exc
        try:
            self._server = await loop.create_server(
                lambda: _Flow(self).client, self.listen_host, self.listen_port, reuse_address=True
            )
        except OSError as exc:
            self._shutdown_executor()
            raise LabError(
                f"the lab NLB cannot listen on {self.listen_host}:{self.listen_port}: {exc}",
                hint="on Linux all of 127.0.0.0/8 is local; elsewhere add the address to lo",
            ) from exc
        self._address = self._server.sockets[0].getsockname()[:2]
        if self.listen_host_v6:
            try:
                self._server_v6 = await loop.create_server(
                    lambda: _Flow(self).client, self.listen_host_v6, 0, reuse_address=True
                )
            except OSError as exc:
                self._server.close()
                self._server = None
                self._shutdown_executor()
                raise LabError(
                    f"the lab NLB cannot listen on {self.listen_host_v6}: {exc}",
                    hint="IPv6 scenarios need ::1 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)",
                ) from exc
            self._address_v6 = self._server_v6.sockets[0].getsockname()[:2]
        self._poller = asyncio.create_task(self._poll_loop(), name="ppdoctor-nlb-poll")
        self._reconcile_checkers()

    async def stop(self) -> None:
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        server_v6, self._server_v6 = self._server_v6, None
        if server_v6 is not None:
            server_v6.close()
        tasks = [t for t in (self._poller, *self._checkers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for timer in self._delay_timers:
            timer.cancel()
        self._delay_timers.clear()
        for flow in list(self._flows):
            flow.abort()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None
        self._checkers.clear()
        if server is not None:
            await server.wait_closed()
        if server_v6 is not None:
            await server_v6.wait_closed()
        # Let the aborted transports run their connection_lost callbacks.
        await asyncio.sleep(0)
        self._shutdown_executor()

    async def __aenter__(self) -> "NlbEmulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def refresh(self) -> LiveState:
        """Read the live state now (the poll loop does this when moto may have changed)."""
        assert self._executor is not None and self._clients is not None
        loop = asyncio.get_running_loop()
        # Taken before the read: a change made while the read runs shows at the next look.
        activity = self._moto_activity()
        state = await loop.run_in_executor(self._executor, read_live_state, self._clients, self.world,
                                           self.tls_cert is not None)
        previous, self._state = self._state, state
        if previous is not None:  # before the checkers are reconciled: a leaving target's health is still known
            delay = deregistration_delay(state.attributes)
            left = self._deregistrations.update(previous.targets, state.targets, delay, time.monotonic(),
                                                lambda t: self.target_health(t.id, t.port))
            for t in left:  # the end of the delay: connection termination, if the attribute says so by then
                self._delay_timers.add(loop.call_later(delay * self.idle_timeout_scale, self._delay_ended, (t.id, t.port)))
        self._reads += 1
        self._read_activity = activity
        self._read_at = loop.time()
        if self._server is not None:
            self._reconcile_checkers()
        return state

    # --- polling ----------------------------------------------------------------------

    def _moto_activity(self) -> int | None:
        """moto's activity count, or None when ``endpoint_url`` is not that server's."""
        if not self.moto.running or self.moto.endpoint_url != self.endpoint_url:
            return None
        return self.moto.activity

    def _state_may_have_changed(self) -> bool:
        if self._poll_failing or self._read_activity is None:
            return True
        if asyncio.get_running_loop().time() - self._read_at >= self.full_refresh_interval:
            return True
        return self._moto_activity() != self._read_activity

    async def _poll_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.poll_interval)
            if not self._state_may_have_changed():
                continue
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # moto restarting, a transient HTTP error: keep the last state
                self._stats.poll_errors += 1
                if not self._poll_failing:
                    log.warning("lab NLB: reading the target group from moto failed, keeping the last state: %s", exc)
                self._poll_failing = True
            else:
                if self._poll_failing:
                    log.info("lab NLB: reading the target group from moto works again")
                self._poll_failing = False

    def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # --- flows ------------------------------------------------------------------------

    def _flow_started(self, flow: _Flow) -> None:
        self._flows.add(flow)
        self._stats.connections += 1
        self._stats.active += 1
        transport = flow.client.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        flow.client_addr = (peer[0], peer[1])
        flow.listener_addr = transport.get_extra_info("sockname")[:2]
        state = self._state
        assert state is not None
        v6 = ipv6_flow_mode(state, flow.client_addr[0])
        if v6 == "refuse":
            self._reset_client(flow)
            return
        if v6 is not None:
            mode = v6  # an IPv4 target group: the NLB translates, preservation cannot apply
        elif self.privatelink:
            mode = "nlb"  # preservation has no effect on PrivateLink traffic
        else:
            mode = return_path(state, flow.client_addr[0], self.vpc_cidr)
        if mode != "blackhole" and not nlb_admits(state, flow.client_addr[0], self.world.listener_port):
            self._stats.sg_dropped += 1
            mode = "blackhole"
        if mode == "blackhole":
            self._stats.blackholed += 1
            self._stats.blackholed_active += 1
            flow.blackhole(self.idle_timeout)
            return
        flow.mode = mode
        transport.pause_reading()  # until the target connection exists
        flow.task = asyncio.create_task(self._connect(flow, state), name="ppdoctor-nlb-connect")

    def _flow_finished(self, flow: _Flow) -> None:
        if flow in self._flows:
            self._flows.discard(flow)
            self._stats.active -= 1
            if flow.mode == "blackhole":
                self._stats.blackholed_active -= 1

    def _delay_ended(self, key: tuple[str, int]) -> None:
        """A deregistered target's delay is over: with ``deregistration_delay.connection_termination.enabled`` the
        NLB closes its open flows (reset both ways); without it they go on until they close or idle out."""
        now = asyncio.get_running_loop().time()
        self._delay_timers = {t for t in self._delay_timers if t.when() > now}  # forget the ones that fired
        state = self._state
        if state is None or any((t.id, t.port) == key for t in state.targets):
            return  # registered again meanwhile
        if str(state.attributes.get(ATTR_CONNECTION_TERMINATION, "false")).lower() != "true":
            return
        for flow in [f for f in self._flows if f.target_key == key and not f.finished]:
            self._stats.deregistration_resets += 1
            self._stats.resets_to_client += 1
            flow.abort()

    def draining(self) -> list[str]:
        """"ip:port" of the deregistered targets still draining (lab/nlb_drain.py)."""
        now = time.monotonic()  # any thread: the supervisor's status line reads stats
        return [f"{d.target.id}:{d.target.port}" for d in self._deregistrations.draining(now)]

    def _pick_target(self, state: LiveState) -> LiveTarget | None:
        # A target deregistered moments ago may still get new flows, with the health it left with.
        routed = self._deregistrations.routed(time.monotonic())
        usable = [t for t in state.targets if t.ip] + [d.target for d in routed if d.target.ip]
        healthy = [t for t in state.targets if t.ip and self.target_health(t.id, t.port).state == "healthy"]
        healthy += [d.target for d in routed if d.target.ip and d.health.state == "healthy"]
        # No healthy target: the NLB fails open to all of them
        # ("Health checks for Network Load Balancer target groups").
        candidates = healthy or usable
        if not candidates:
            return None
        self._rr += 1
        chosen = candidates[self._rr % len(candidates)]
        if chosen not in state.targets:
            self._stats.to_deregistered += 1
        return chosen

    async def _connect(self, flow: _Flow, state: LiveState) -> None:
        target = self._pick_target(state)
        if target is None:
            log.info("lab NLB: no registered target for %s:%s", *flow.client_addr)
            self._reset_client(flow)
            return
        source = flow.client_addr[0] if flow.mode == "preserved" else self.world.nlb_private_ip
        if not target_admits(state, target, source):
            # The target's security group drops the SYN: nothing ever comes back.
            self._stats.sg_dropped += 1
            self._stats.blackholed += 1
            self._stats.blackholed_active += 1
            flow.blackhole(self.idle_timeout)
            client_transport = flow.client.transport
            if client_transport is not None and not client_transport.is_closing():
                client_transport.resume_reading()
            return
        side = _Side(flow)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(
                    lambda: side, target.ip, target.port, local_addr=(source, 0)
                )
        except (OSError, TimeoutError) as exc:
            self._stats.target_connect_failures += 1
            log.info("lab NLB: connecting to target %s:%s from %s failed: %s", target.ip, target.port, source, exc)
            self._reset_client(flow)
            return
        if flow.client.lost or flow.finished:
            _reset(side.transport)
            return
        self._stats.forwarded += 1
        flow.target_key = (target.id, target.port)
        flow.last_activity = loop.time()
        if state.pp_v2:
            assert self._address is not None
            header = proxy_v2(flow.client_addr, flow.listener_addr, vpce_id=self._flow_vpce_id(state))
            assert side.transport is not None
            if header_on_connect(state.attributes):
                side.transport.write(header)
            else:  # the default placement: with the client's first data (lab/nlb_placement.py)
                flow.pending_header = header
            self._stats.pp_headers_sent += 1
        if state.protocol == "TLS" or state.listener_protocol == "TLS":
            if not await self._tls(flow, side, state):
                return
        client_transport = flow.client.transport
        if client_transport is not None and not client_transport.is_closing():
            client_transport.resume_reading()

    def _idle_expired(self, flow: _Flow, now: float) -> bool:
        state = self._state
        if state is None or not flow.last_activity:
            return False
        return idle_expired(flow.last_activity, now, state.idle_timeout_seconds, self.idle_timeout_scale)

    async def _tls(self, flow: _Flow, side: _Side, state: LiveState) -> bool:
        """TLS listener / TLS target group (nlb_tls.py); False when a handshake failed and the flow is reset."""
        from . import nlb_tls

        cert = self.tls_cert if state.listener_protocol == "TLS" else None
        if state.listener_protocol == "TLS" and cert is None:
            log.warning("lab NLB: TLS listener without a certificate; resetting")
        if state.protocol == "TLS" and flow.pending_header is not None and side.transport is not None:
            # Towards a TLS target the header goes first on the TCP connection, before the NLB's ClientHello,
            # whatever the placement attribute says about the client's data.
            side.transport.write(flow.pending_header)
            flow.pending_header = None
        try:
            await nlb_tls.wrap_flow(flow.client, side, target_tls=state.protocol == "TLS", listener_cert=cert)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self._stats.tls_failures += 1
            log.info("lab NLB: TLS for %s:%s failed: %s", *flow.client_addr, exc)
            if not flow.finished:
                _reset(side.transport)
                self._reset_client(flow)
            return False
        return not (flow.client.lost or flow.finished)

    def _flow_vpce_id(self, state: LiveState) -> str | None:
        """The VPC endpoint id for TLV 0xEA: the explicit one, else the endpoint a PrivateLink client uses."""
        if self._vpc_endpoint_id:
            return self._vpc_endpoint_id
        if self.privatelink and state.vpc_endpoint_ids:
            return state.vpc_endpoint_ids[0]
        return None

    def _reset_client(self, flow: _Flow) -> None:
        self._stats.resets_to_client += 1
        _reset(flow.client.transport)
        flow.finish()

    # --- health checks ----------------------------------------------------------------

    def _reconcile_checkers(self) -> None:
        state = self._state
        if state is None:
            return
        wanted = {(t.id, t.port) for t in state.targets}
        for key in list(self._checkers):
            if key not in wanted:
                self._checkers.pop(key).cancel()
                self._health.pop(key, None)
                self._stats.health.pop(f"{key[0]}:{key[1]}", None)
                self.moto.clear_target_health(state.tg_arn, key[0], key[1])
        for key in wanted:
            if key not in self._checkers:
                self._health[key] = _TargetHealth()
                self._publish(key)
                self._checkers[key] = asyncio.create_task(
                    self._check_loop(key), name=f"ppdoctor-nlb-hc-{key[0]}:{key[1]}"
                )

    def _publish(self, key: tuple[str, int]) -> None:
        health = self._health[key]
        record = health.record
        self.moto.set_target_health(self.world.tg_arn, key[0], key[1], record.state, record.reason, record.description)
        self._stats.health[f"{key[0]}:{key[1]}"] = {
            "state": record.state,
            "reason": record.reason,
            "last_result": health.last.detail if health.last else None,
        }

    async def _check_loop(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        # The flag ends the loop even if a cancellation gets lost in a library call.
        while not self._stopping:
            state = self._state
            assert state is not None
            hc = state.health_check
            interval = max(hc.interval_seconds * self.hc_interval_scale, 0.05)
            started = loop.time()
            target = next((t for t in state.targets if (t.id, t.port) == key), None)
            if target is not None and hc.enabled:
                if target_admits(state, replace(target, port=hc.port_for(target.port)), self.world.nlb_private_ip):
                    result = await self.check_target(target, hc, pp_v2=state.pp_v2)
                else:  # the target's security group drops the NLB's checks: they time out
                    result = HealthCheckResult(False, "connect: timeout")
                self._stats.health_checks += 1
                if not result.ok:
                    self._stats.health_check_failures += 1
                health = self._health.get(key)
                if health is None:
                    return
                health.observe(result, hc)
                self._publish(key)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    async def check_target(self, target: LiveTarget, hc: HealthCheckSettings, *, pp_v2: bool) -> HealthCheckResult:
        """One health check as the NLB sends it, from the NLB's private IP."""
        if not target.ip:
            return HealthCheckResult(False, "target has no IP address")
        port = hc.port_for(target.port)
        timeout = max(hc.timeout_seconds * self.hc_interval_scale, MIN_HC_TIMEOUT)
        writer: asyncio.StreamWriter | None = None
        stage = "connect"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    target.ip, port, local_addr=(self.world.nlb_private_ip, 0)
                )
                if pp_v2:
                    writer.write(local_v2())  # AWS sends a LOCAL header on health-check connections
                if hc.protocol == "TCP":
                    await writer.drain()
                    return HealthCheckResult(True, "connected")
                if hc.protocol == "HTTPS":
                    stage = "tls"
                    await writer.drain()
                    await writer.start_tls(_health_check_tls())
                stage = "http"
                writer.write(self._http_request(hc))
                await writer.drain()
                status_line = await reader.readline()
        except TimeoutError:
            return HealthCheckResult(False, f"{stage}: timeout")
        except ssl.SSLError as exc:
            return HealthCheckResult(False, f"{stage}: {exc.reason or exc}")
        except OSError as exc:
            return HealthCheckResult(False, f"{stage}: {type(exc).__name__} {exc.strerror or exc}".rstrip())
        finally:
            if writer is not None:
                writer.close()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(MIN_HC_TIMEOUT):
                        await writer.wait_closed()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            shown = status_line[:40].decode("latin-1") or "nothing"
            return HealthCheckResult(False, f"malformed response: {shown!r}")
        code = int(parts[1])
        if codes_match(hc.matcher, code):
            return HealthCheckResult(True, f"HTTP {code}")
        return HealthCheckResult(False, f"HTTP {code} not in {hc.matcher}")

    def _http_request(self, hc: HealthCheckSettings) -> bytes:
        # "the host header contains the IP address of the load balancer node and the listener
        # port" ("Health checks for Network Load Balancer target groups").
        host = f"{self.world.nlb_private_ip}:{self._address[1] if self._address else self.world.listener_port}"
        return (
            f"GET {hc.path or '/'} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"User-Agent: {HEALTH_CHECK_USER_AGENT}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")


def _health_check_tls() -> ssl.SSLContext:
    # NLB HTTPS checks do not verify the certificate, and targets that speak only TLS 1.3 fail
    # them ("Health checks for Network Load Balancer target groups").
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx
