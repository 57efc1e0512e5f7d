"""Hypothesis strategies for PROXY headers, shared by the property and scapy tests."""

from __future__ import annotations

import socket

from hypothesis import strategies as st

from ppdoctor.proxyproto import TLV, Address, Command, Family, Protocol, ProxyHeader

ports = st.integers(0, 65535)
ipv4 = st.binary(min_size=4, max_size=4).map(lambda b: socket.inet_ntop(socket.AF_INET, b))
ipv6 = st.binary(min_size=16, max_size=16).map(lambda b: socket.inet_ntop(socket.AF_INET6, b))
unix_path = (
    st.binary(max_size=108)
    .filter(lambda b: not b.endswith(b"\x00"))
    .map(lambda b: b.decode("utf-8", "surrogateescape"))
)
tlv = st.builds(TLV, st.integers(0, 255).filter(lambda t: t != 0x03), st.binary(max_size=40))
ssl_tlv = st.builds(
    lambda client, verify, subs: TLV(0x20, bytes([client]) + verify.to_bytes(4, "big") + b"".join(
        bytes([t]) + len(v).to_bytes(2, "big") + v for t, v in subs)),
    st.integers(0, 255), st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.integers(0x21, 0x25), st.binary(max_size=20)), max_size=3),
)  # fmt: skip
aws_tlv = st.text(alphabet="abcdef0123456789-vpce", max_size=30).map(TLV.aws_vpce)
tlvs = st.lists(st.one_of(tlv, ssl_tlv, aws_tlv), max_size=5).map(tuple)


@st.composite
def endpoints(draw, family: Family):
    if family == Family.INET:
        return Address(draw(ipv4), draw(ports)), Address(draw(ipv4), draw(ports))
    if family == Family.INET6:
        return Address(draw(ipv6), draw(ports)), Address(draw(ipv6), draw(ports))
    if family == Family.UNIX:
        return Address(draw(unix_path), None), Address(draw(unix_path), None)
    return None, None


@st.composite
def v2_headers(draw):
    family = draw(st.sampled_from(Family))
    src, dst = draw(endpoints(family))
    return ProxyHeader(
        version=2,
        command=draw(st.sampled_from(Command)),
        family=family,
        protocol=draw(st.sampled_from(Protocol)),
        src=src,
        dst=dst,
        tlvs=draw(tlvs),
    )


@st.composite
def v1_headers(draw):
    family = draw(st.sampled_from([Family.INET, Family.INET6, Family.UNSPEC]))
    src, dst = draw(endpoints(family))
    protocol = Protocol.UNSPEC if family == Family.UNSPEC else Protocol.STREAM
    return ProxyHeader(1, Command.PROXY, family, protocol, src, dst, ())
