"""Every AWS action and Kubernetes verb ppdoctor uses: one table for AccessDenied/403 hints and `ppdoctor permissions`.

A call not in this table is a bug (tests/discovery/test_permissions.py records the calls a full
probe + fix + discovery run makes against the lab and checks each against it). IAM action names
from the Service Authorization Reference ("Actions defined by Elastic Load Balancing V2", "… Amazon
EC2"); Kubernetes verbs as the apiserver's request-info resolver derives them (port-forward is
``get``/``create`` on ``pods/portforward``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class AwsPermission:
    operation: str  # boto3 client method
    action: str  # IAM action
    purpose: str
    fix: bool = False  # only the fixes need it


@dataclass(frozen=True)
class KubePermission:
    group: str  # "" = core
    resource: str  # plural, optionally with a subresource ("pods/portforward")
    verbs: tuple[str, ...]
    purpose: str
    fix: bool = False
    cluster_wide: bool = False  # listed across namespaces (discovery, EnvoyFilters)

    @property
    def qualified(self) -> str:
        """How ppdoctor names it in messages: ``deployments.apps``, ``services``."""
        head, _, sub = self.resource.partition("/")
        name = f"{head}.{self.group}" if self.group else head
        return f"{name}/{sub}" if sub else name


AWS_PERMISSIONS: tuple[AwsPermission, ...] = (
    AwsPermission("describe_load_balancers", "elasticloadbalancing:DescribeLoadBalancers", "find the NLB (by DNS name)"),
    AwsPermission("describe_listeners", "elasticloadbalancing:DescribeListeners", "listener ports and their target groups"),
    AwsPermission("describe_target_groups", "elasticloadbalancing:DescribeTargetGroups", "target type, protocol, health check"),
    AwsPermission("describe_target_group_attributes", "elasticloadbalancing:DescribeTargetGroupAttributes",
                  "proxy_protocol_v2.enabled, preserve_client_ip.enabled"),
    AwsPermission("describe_target_health", "elasticloadbalancing:DescribeTargetHealth", "targets and their health"),
    AwsPermission("describe_tags", "elasticloadbalancing:DescribeTags", "ownership (LB Controller / in-tree tags)"),
    AwsPermission("describe_network_interfaces", "ec2:DescribeNetworkInterfaces", "the NLB's private addresses"),
    AwsPermission("describe_vpcs", "ec2:DescribeVpcs", "the VPC CIDRs (hairpin clients)"),
    AwsPermission("describe_route_tables", "ec2:DescribeRouteTables", "the targets' default route (NAT)"),
    AwsPermission("describe_subnets", "ec2:DescribeSubnets", "the targets' subnet"),
    AwsPermission("describe_instances", "ec2:DescribeInstances", "instance targets' addresses"),
    AwsPermission("describe_security_groups", "ec2:DescribeSecurityGroups",
                  "security groups of the targets' ENIs and of the NLB"),
    AwsPermission("describe_vpc_endpoint_service_configurations", "ec2:DescribeVpcEndpointServiceConfigurations",
                  "is the NLB behind a PrivateLink endpoint service"),
    AwsPermission("modify_target_group_attributes", "elasticloadbalancing:ModifyTargetGroupAttributes",
                  "fix: PROXY protocol v2 / client IP preservation on the target group", fix=True),
    AwsPermission("modify_target_group", "elasticloadbalancing:ModifyTargetGroup", "fix: the health check", fix=True),
)

KUBE_PERMISSIONS: tuple[KubePermission, ...] = (
    KubePermission("", "services", ("get", "list"), "the gateway Service; discovery lists LoadBalancer Services",
                   cluster_wide=True),
    KubePermission("", "pods", ("list",), "the gateway pods (targets → pods)"),
    KubePermission("", "pods/portforward", ("get", "create"), "reach a gateway pod's traffic and admin ports"),
    KubePermission("", "configmaps", ("get",), "the istio mesh config"),
    KubePermission("apps", "deployments", ("get", "list"), "the gateway Deployment; is the LB Controller installed"),
    KubePermission("networking.istio.io", "envoyfilters", ("list",), "EnvoyFilters that patch the gateway",
                   cluster_wide=True),
    KubePermission("elbv2.k8s.aws", "targetgroupbindings", ("list",), "the LB Controller's TargetGroupBindings"),
    KubePermission("networking.istio.io", "gateways", ("list",), "Istio Gateway servers (which ports get listeners)",
                   cluster_wide=True),
    KubePermission("gateway.networking.k8s.io", "gateways", ("get", "list"), "Gateway API gateways (discovery, PPD027)",
                   cluster_wide=True),
    KubePermission("", "services", ("patch",), "fix: Service annotations", fix=True),
    KubePermission("", "configmaps", ("patch",), "fix: the istio mesh config", fix=True),
    KubePermission("apps", "deployments", ("patch",), "fix: the gateway pod template", fix=True),
    KubePermission("networking.istio.io", "envoyfilters", ("create", "patch", "delete"), "fix: EnvoyFilters", fix=True),
    KubePermission("networking.istio.io", "gateways", ("patch",), "fix: Istio Gateway servers", fix=True),
    KubePermission("gateway.networking.k8s.io", "gateways", ("patch",), "fix: Gateway infrastructure annotations",
                   fix=True),
)

AWS_ACTIONS: dict[str, str] = {p.operation: p.action for p in AWS_PERMISSIONS}


def _split(resource: str) -> tuple[str, str, str]:
    """``deployments.apps/status`` → (group, plural, subresource)."""
    head, _, sub = resource.partition("/")
    plural, _, group = head.partition(".")
    return group, plural, sub


def kube_permission(verb: str, resource: str) -> KubePermission | None:
    """The table row granting ``verb`` on ``resource`` (as ppdoctor names it: ``deployments.apps``)."""
    group, plural, sub = _split(resource)
    want = f"{plural}/{sub}" if sub else plural
    for p in KUBE_PERMISSIONS:
        if p.group == group and p.resource == want and verb in p.verbs:
            return p
    return None


def aws_permission(action_or_operation: str) -> AwsPermission | None:
    for p in AWS_PERMISSIONS:
        if action_or_operation in (p.operation, p.action):
            return p
    return None


def iam_policy(*, with_fixes: bool = False) -> dict:
    """The least-privilege IAM policy document (read-only unless ``with_fixes``)."""
    read = sorted({p.action for p in AWS_PERMISSIONS if not p.fix})
    statements = [{"Sid": "PpdoctorRead", "Effect": "Allow", "Action": read, "Resource": "*"}]
    if with_fixes:
        # ELBv2 Modify* accept target-group ARNs as resources; "*" keeps the policy valid for every TG.
        statements.append({"Sid": "PpdoctorFix", "Effect": "Allow",
                           "Action": sorted({p.action for p in AWS_PERMISSIONS if p.fix}), "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def kube_rbac(*, with_fixes: bool = False, name: str = "ppdoctor") -> list[dict]:
    """A ClusterRole with every rule ppdoctor needs (reads cluster-wide; fixes too with ``with_fixes``)."""
    merged: dict[tuple[str, str], set[str]] = {}
    for p in KUBE_PERMISSIONS:
        if p.fix and not with_fixes:
            continue
        merged.setdefault((p.group, p.resource), set()).update(p.verbs)
    rules = [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
             for (group, resource), verbs in sorted(merged.items())]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name + ("-fix" if with_fixes else "-read")}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": role["metadata"]["name"]},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ppdoctor-oncall"}]}
    return [role, binding]


def iam_policy_json(*, with_fixes: bool = False) -> str:
    return json.dumps(iam_policy(with_fixes=with_fixes), indent=2)


def kube_rbac_yaml(*, with_fixes: bool = False) -> str:
    import yaml

    return yaml.safe_dump_all(kube_rbac(with_fixes=with_fixes), sort_keys=False)


def run_cli(args) -> int:  # noqa: ANN001 - argparse.Namespace
    """``ppdoctor permissions [--aws | --kube] [--with-fixes]``."""
    fixes = bool(getattr(args, "with_fixes", False))
    if not getattr(args, "kube", False):
        if not getattr(args, "aws", False):
            print("# IAM policy (JSON)")
        print(iam_policy_json(with_fixes=fixes))
    if not getattr(args, "aws", False):
        if not getattr(args, "kube", False):
            print("# Kubernetes RBAC (YAML)")
        print(kube_rbac_yaml(with_fixes=fixes), end="")
    return 0
