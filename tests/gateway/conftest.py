"""Fixtures of the gateway tests: echo pods and real Envoy gateway processes on loopback."""

from __future__ import annotations

import pytest_asyncio

from ppdoctor.lab.addresses import ECHO_POD_IP
from ppdoctor.echo.server import start_echo
from ppdoctor.lab.gateway import GatewayProcess


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def echo_pod():
    """ppdoctor's echo (reports headers in order) as the pod behind the gateway."""
    server = await start_echo(ECHO_POD_IP, 0, "ppdoctor", proxy_protocol="off")
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateways(tmp_path_factory, echo_pod):
    """Start gateways on demand (``await gateways(settings, name=...)``); all stopped at the end."""
    started: list[GatewayProcess] = []

    async def start(settings, *, name: str, listener_filters_timeout_s: float = 15.0, upstream=None):
        gw = GatewayProcess(
            tmp_path_factory.mktemp(name),
            echo_upstream=upstream or (echo_pod.host, echo_pod.port),
            listener_filters_timeout_s=listener_filters_timeout_s,
        )
        started.append(gw)
        await gw.start(settings)
        return gw

    yield start
    for gw in started:
        await gw.stop()

