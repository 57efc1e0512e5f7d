"""Where the lab NLB puts its PROXY v2 header in the client-to-server stream.

Target-group attribute ``proxy_protocol_v2.client_to_server.header_placement``: the default,
``on_first_ack_with_payload``, sends the header together with the client's first data, so
nothing reaches the target before the client speaks; ``on_first_ack`` sends it as soon as the
connection is up. A server-first protocol (SMTP, MySQL, SSH) behind a receiver that waits
for the header therefore never shows its greeting with the default (istio/istio #36104;
pires/go-proxyproto #25, which says the attribute is changed through AWS support; TiDB's
docs say the same). AWS's public attribute list does not document it; moto stores it as given.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADER_PLACEMENT_ATTRIBUTE = "proxy_protocol_v2.client_to_server.header_placement"
ON_FIRST_ACK = "on_first_ack"
ON_FIRST_ACK_WITH_PAYLOAD = "on_first_ack_with_payload"  # the default


def header_on_connect(attributes: Mapping[str, str]) -> bool:
    """Send the header right after the handshake (True), or with the client's first data (False)?"""
    return attributes.get(HEADER_PLACEMENT_ATTRIBUTE, ON_FIRST_ACK_WITH_PAYLOAD).strip().lower() == ON_FIRST_ACK
