"""The interop helpers themselves: a missing peer fails loudly, ports and readiness work."""

from __future__ import annotations

import socket

import pytest
from pp_peers import free_port, port_open, require_binary


def test_missing_peer_binary_fails_instead_of_skipping() -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        require_binary("ppdoctor-no-such-peer", "apt-get install ppdoctor-no-such-peer")
    assert "install it (apt-get install ppdoctor-no-such-peer)" in str(info.value)


def test_free_port_and_port_open() -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert port_open("127.0.0.1", port)
