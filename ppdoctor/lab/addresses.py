"""Loopback address plan of the embedded lab: every actor has its own address.

On Linux the whole 127.0.0.0/8 is routed to ``lo``, so each actor can bind and connect
from its own address without privileges. An address seen in a header or by the echo
therefore says who put it there. The VPC uses loopback space so that moto holds the
real addresses (moto accepts a VPC 127.1.0.0/16 and ENIs inside it).
"""

from __future__ import annotations

# The source ppdoctor's probes spoof in their own PROXY headers (RFC 5737 TEST-NET-3), re-exported for the lab.
from ..probes.network import TEST_NET_SOURCE as TEST_NET_SOURCE

# Outside the VPC: the lab's "internet" client.
CLIENT_IP = "127.0.0.5"
# A second client, inside the VPC CIDR, for hairpin scenarios.
VPC_CLIENT_IP = "127.1.9.5"

VPC_CIDR = "127.1.0.0/16"
PUBLIC_SUBNET_CIDR = "127.1.1.0/24"
PRIVATE_SUBNET_CIDR = "127.1.2.0/24"

# The NLB's private ENI in the public subnet (description "ELB net/<name>/<id>").
# The emulator listens here and connects to targets *from* this address.
NLB_IP = "127.1.1.10"
GATEWAY_POD_IP = "127.1.2.10"
# Every gateway pod gets its own address, as the VPC CNI gives each new pod one: a rollout starts the new
# pod on the next free one while the old pod, terminating, still holds its own (lab/world.py).
# (127.1.2.11 is the Gateway API gateway's pod, lab/gatewayapi.py.)
GATEWAY_POD_IPS = (GATEWAY_POD_IP, "127.1.2.12", "127.1.2.13", "127.1.2.14")
ECHO_POD_IP = "127.1.2.20"
# Pods of scenarios' in-cluster callers (kubernetes.in_cluster_callers), in the pod subnet.
IN_CLUSTER_CALLER_IPS = ("127.1.2.30", "127.1.2.31", "127.1.2.32")
# Other pods / the lab API server and moto.
CONTROL_PLANE_IP = "127.0.0.1"
