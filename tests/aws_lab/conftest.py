"""Fixtures for the lab's AWS side: one moto server per session, a fresh world per test."""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ppdoctor.lab import addresses
from ppdoctor.lab.aws import MotoServer, aws_client, seed_aws
from ppdoctor.lab.nlb import NlbEmulator
from ppdoctor.lab.scenario import STATUS_PORT, TRAFFIC_PORT, AwsSpec

from .support import Behaviour, Lab, LoopbackTarget, TlsTarget, echo_http, make_spec, no_pp_listener


@pytest.fixture(scope="module")
def moto_server() -> Any:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, emptied before each test."""
    request = urllib.request.Request(f"{moto_server.endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_server


@pytest.fixture
async def make_lab(moto: MotoServer) -> AsyncIterator[Callable[..., Awaitable[Lab]]]:
    labs: list[Lab] = []

    async def factory(
        spec: AwsSpec | None = None,
        *,
        gateway: Behaviour | TlsTarget = echo_http,
        status: Behaviour = no_pp_listener,
        poll_interval: float = 0.1,
        hc_interval_scale: float = 0.02,
        **nlb_options: Any,
    ) -> Lab:
        spec = spec or make_spec()
        gw = await (gateway if isinstance(gateway, TlsTarget) else LoopbackTarget(addresses.GATEWAY_POD_IP, gateway)).start()
        st = await LoopbackTarget(addresses.GATEWAY_POD_IP, status).start()
        world = await asyncio.to_thread(
            seed_aws,
            moto.endpoint_url,
            spec,
            target_ip=addresses.GATEWAY_POD_IP,
            port_map={TRAFFIC_PORT: gw.port, STATUS_PORT: st.port},
        )
        nlb = NlbEmulator(
            moto.endpoint_url,
            world,
            moto,
            poll_interval=poll_interval,
            hc_interval_scale=hc_interval_scale,
            **nlb_options,
        )
        await nlb.start()
        lab = Lab(
            moto, world, nlb, gw, st,
            elbv2=aws_client("elbv2", moto.endpoint_url, world.region),
            ec2=aws_client("ec2", moto.endpoint_url, world.region),
        )
        labs.append(lab)
        return lab

    yield factory
    for lab in labs:
        await lab.nlb.stop()
        await lab.gateway.stop()
        await lab.status.stop()


@pytest.fixture
def tls_server_context(tmp_path: Any) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (cryptography comes with moto)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.lab")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx
