"""pods/portforward through kubernetes.stream.portforward, against small local TCP servers."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from ppdoctor.lab.kubeapi import ThreadedKubeApiServer

from .conftest import GW, NS, gateway_manifests

POD = f"{GW}-7d9f8b-abcde"


class TcpTarget:
    """A loopback TCP server with a scripted behaviour per connection."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.peer_closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            try:
                if self.mode == "http":
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    self.received.append(data)
                    body = b'{"origin": "127.1.1.10"}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n%s" % (len(body), body))
                elif self.mode == "silent-close":
                    conn.recv(65536)  # read the request, answer nothing, close (Envoy with PP on)
                elif self.mode == "greet-close":
                    conn.sendall(b"220 hello\r\n")
                elif self.mode == "echo":
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            self.peer_closed.set()
                            return
                        conn.sendall(chunk)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        self._accept.join(2)
        for t in self._threads:
            t.join(2)


@pytest.fixture
def targets():
    made: list[TcpTarget] = []

    def make(mode: str) -> TcpTarget:
        t = TcpTarget(mode)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture
def pf_lab(no_leaks, tmp_path):
    """A lab whose resolver maps (pod, containerPort) to whatever the test registers."""
    mapping: dict[int, tuple[str, int]] = {}
    calls: list[tuple[str, str, int]] = []

    def resolve(namespace: str, pod: str, port: int):
        calls.append((namespace, pod, port))
        return mapping.get(port)

    srv = ThreadedKubeApiServer(gateway_manifests(), resolve_pod_port=resolve)
    srv.start()
    path = srv.write_kubeconfig(str(tmp_path / "kc"))
    api_client = config.new_client_from_config(config_file=path)
    try:
        yield srv, client.CoreV1Api(api_client), mapping, calls
    finally:
        api_client.close()
        srv.stop()


def close_pf(pf) -> None:
    """Close a kubernetes.stream PortForward completely. Its proxy thread does not close the
    WebSocket's socket when the server closed first (websocket-client marks it disconnected
    on the close frame), so the socket would otherwise be left to the garbage collector."""
    pf.close()
    deadline = time.monotonic() + 5
    while pf.websocket.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    pf.websocket.shutdown()


def recv_all(sock, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def test_http_round_trip(pf_lab, targets):
    _srv, core, mapping, calls = pf_lab
    target = targets("http")
    mapping[8080] = ("127.0.0.1", target.port)
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="8080")
    try:
        sock = pf.socket(8080)
        sock.sendall(b"GET /ip HTTP/1.1\r\nHost: echo\r\n\r\n")
        reply = recv_all(sock)
    finally:
        close_pf(pf)
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b'{"origin": "127.1.1.10"}')
    assert target.received == [b"GET /ip HTTP/1.1\r\nHost: echo\r\n\r\n"]
    assert calls == [(NS, POD, 8080)]
    assert pf.error(8080) is None


def test_remote_close_is_eof(pf_lab, targets):
    _srv, core, mapping, _calls = pf_lab
    mapping[8080] = ("127.0.0.1", targets("silent-close").port)
    mapping[25] = ("127.0.0.1", targets("greet-close").port)
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="8080")
    try:
        sock = pf.socket(8080)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_all(sock) == b""  # closed without a byte, like Envoy expecting PROXY protocol
    finally:
        close_pf(pf)
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="25")
    try:
        assert recv_all(pf.socket(25)) == b"220 hello\r\n"  # server speaks first, then closes
    finally:
        close_pf(pf)


def test_refused_reports_on_error_channel(pf_lab):
    _srv, core, mapping, _calls = pf_lab
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_port = probe.getsockname()[1]
    probe.close()
    mapping[8080] = ("127.0.0.1", dead_port)
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="8080")
    try:
        sock = pf.socket(8080)
        assert recv_all(sock) == b""
        err = pf.error(8080)
    finally:
        close_pf(pf)
    assert err.startswith("error forwarding port 8080 to pod ")
    assert "connection refused" in err


def test_several_ports_and_client_close(pf_lab, targets):
    _srv, core, mapping, _calls = pf_lab
    echo = targets("echo")
    mapping[9000] = ("127.0.0.1", echo.port)
    # 9001 is not mapped: the resolver says there is nothing there
    pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="9000,9001")
    try:
        bad = pf.socket(9001)
        assert recv_all(bad) == b""
        assert "connection refused" in pf.error(9001)
        good = pf.socket(9000)
        payload = bytes(range(256)) * 4096  # 1 MiB, binary-safe
        sender = threading.Thread(target=good.sendall, args=(payload,))
        sender.start()
        got = b""
        good.settimeout(5)
        while len(got) < len(payload):
            got += good.recv(1 << 20)
        sender.join()
        assert got == payload
    finally:
        close_pf(pf)
    # the client closing its socket closes the pod-side connection
    assert echo.peer_closed.wait(5)


def test_default_resolver_uses_pod_ip(no_leaks, tmp_path, targets):
    target = targets("http")
    manifests = gateway_manifests()
    for m in manifests:
        if m["kind"] == "Pod" and m["metadata"]["name"] == POD:
            m["status"]["podIP"] = "127.0.0.1"
    with ThreadedKubeApiServer(manifests) as srv:
        path = srv.write_kubeconfig(str(tmp_path / "kc"))
        with config.new_client_from_config(config_file=path) as api_client:
            core = client.CoreV1Api(api_client)
            pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports=str(target.port))
            try:
                sock = pf.socket(target.port)
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                assert recv_all(sock).startswith(b"HTTP/1.1 200 OK")
            finally:
                close_pf(pf)
            with pytest.raises(ApiException) as ei:
                portforward(core.connect_get_namespaced_pod_portforward, "no-such-pod", NS, ports="80")
            assert "404" in str(ei.value)


def test_stop_closes_open_forwards(no_leaks, tmp_path, targets):
    echo = targets("echo")
    srv = ThreadedKubeApiServer(gateway_manifests(), resolve_pod_port=lambda ns, pod, port: ("127.0.0.1", echo.port))
    srv.start()
    path = srv.write_kubeconfig(str(tmp_path / "kc"))
    api_client = config.new_client_from_config(config_file=path)
    try:
        pf = portforward(client.CoreV1Api(api_client).connect_get_namespaced_pod_portforward, POD, NS, ports="80")
        sock = pf.socket(80)
        sock.sendall(b"ping")
        sock.settimeout(5)
        assert sock.recv(10) == b"ping"
        t0 = time.monotonic()
        srv.stop()
        assert recv_all(sock) == b""  # the forward ends when the server stops
        assert time.monotonic() - t0 < 5
        assert echo.peer_closed.wait(5)
        close_pf(pf)
    finally:
        api_client.close()
        srv.stop()


def test_tls_server_with_ca_in_kubeconfig(no_leaks, tmp_path, targets):
    target = targets("http")
    with ThreadedKubeApiServer(gateway_manifests(), tls=True,
                               resolve_pod_port=lambda ns, pod, port: ("127.0.0.1", target.port)) as srv:
        assert srv.url.startswith("https://127.0.0.1:") and srv.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
        path = srv.write_kubeconfig(str(tmp_path / "kc"))
        with config.new_client_from_config(config_file=path) as api_client:
            core = client.CoreV1Api(api_client)
            assert core.read_namespace(NS).metadata.name == NS
            pf = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="8080")
            try:
                sock = pf.socket(8080)
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                assert recv_all(sock).startswith(b"HTTP/1.1 200 OK")
            finally:
                close_pf(pf)
