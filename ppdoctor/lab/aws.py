"""The lab's AWS, one import away: moto server, target health, seeding and live state re-exported.

The parts live in their own modules: ``aws_health`` (the process-global target-health registry
patched into moto), ``aws_moto`` (the moto server, its WSGI activity counter, boto3 clients),
``aws_seed`` (a scenario's objects created in moto) and ``aws_live`` (the state the NLB emulator
polls). moto and boto3 are imported lazily by each: this module is on ppdoctor's start-up path.
"""

from __future__ import annotations

from .aws_health import (
    HEALTH_FAILED,
    HEALTH_HEALTHY,
    HEALTH_INITIAL,
    HEALTH_REGISTRATION,
    TARGET_STATES,
    TargetHealthRecord,
)
from .aws_live import (
    NLB_DEFAULT_MATCHER,
    AwsClients,
    HealthCheckSettings,
    LiveState,
    LiveTarget,
    default_preserve_client_ip,
    in_cidr,
    read_live_state,
)
from .aws_moto import DUMMY_CREDENTIALS, EMULATOR_USER_AGENT, MotoServer, aws_client
from .aws_seed import AwsWorld, eni_description, lb_id_from_arn, seed_aws

__all__ = [
    "DUMMY_CREDENTIALS",
    "EMULATOR_USER_AGENT",
    "HEALTH_FAILED",
    "HEALTH_HEALTHY",
    "HEALTH_INITIAL",
    "HEALTH_REGISTRATION",
    "NLB_DEFAULT_MATCHER",
    "TARGET_STATES",
    "AwsClients",
    "AwsWorld",
    "HealthCheckSettings",
    "LiveState",
    "LiveTarget",
    "MotoServer",
    "TargetHealthRecord",
    "aws_client",
    "default_preserve_client_ip",
    "eni_description",
    "in_cidr",
    "lb_id_from_arn",
    "read_live_state",
    "seed_aws",
]
