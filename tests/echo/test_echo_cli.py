"""`ppdoctor echo`: prints where it listens, serves PP-aware echoes, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from ppdoctor import proxyproto
from ppdoctor.errors import ConfigError
from ppdoctor.lab.addresses import CLIENT_IP, TEST_NET_SOURCE
from ppdoctor.echo.server import parse_listen, run_cli

LISTEN_IP = "127.1.2.30"


def read_line(stream, deadline: float) -> str:
    line = stream.readline()
    assert line or time.monotonic() < deadline, "no output from ppdoctor echo"
    return line


def test_echo_command_serves_and_stops_on_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppdoctor.cli", "echo", "--listen", f"{LISTEN_IP}:0", "--proxy-protocol", "required"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = read_line(proc.stdout, time.monotonic() + 20)
        match = re.search(rf"listening on http://{re.escape(LISTEN_IP)}:(\d+) \(PROXY protocol: required\)", first)
        assert match, first
        port = int(match.group(1))
        with socket.create_connection((LISTEN_IP, port), source_address=(CLIENT_IP, 0), timeout=5) as s:
            s.sendall(proxyproto.proxy_v2((TEST_NET_SOURCE, 9), (LISTEN_IP, port))
                      + b"GET /cli HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := s.recv(65536):
                response += chunk
        body = json.loads(response.split(b"\r\n\r\n", 1)[1])
        assert body["client_ip"] == TEST_NET_SOURCE and body["path"] == "/cli"
        logged = read_line(proc.stdout, time.monotonic() + 5)
        assert "GET /cli" in logged and "200" in logged
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopped" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text,expected",
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)), (":8080", ("0.0.0.0", 8080))],
)
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "127.0.0.1:99999", "127.0.0.1:http"])
def test_parse_listen_rejects(text):
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_listen_address_in_use_is_a_lab_error():
    from ppdoctor.errors import LabError

    with socket.socket() as taken:
        taken.bind((LISTEN_IP, 0))
        taken.listen()
        args = SimpleNamespace(listen=f"{LISTEN_IP}:{taken.getsockname()[1]}", proxy_protocol="optional")
        with pytest.raises(LabError) as info:
            run_cli(args)
    assert "cannot listen" in info.value.message
