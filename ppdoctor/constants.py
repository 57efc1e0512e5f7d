"""Domain constants of AWS, the AWS Load Balancer Controller, Istio and Envoy, each with the document it comes from.

One spelling per name: probes, rules and fix plans import these instead of writing the
strings again (a misspelt annotation or filter name would silently match nothing).
This module imports nothing, so every layer (and the lab) may use it.
"""

from __future__ import annotations

# --- Istio --------------------------------------------------------------------------------
# Istio docs, "Resource Annotations" (istio.io/latest/docs/reference/config/annotations/):
# ProxyConfig overrides for one workload, read from the pod template only.
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
# Istio docs, "Configuring Gateway Network Topology" (ops/configuration/traffic-management/network-topologies):
# the ProxyConfig key, and its two fields ppdoctor reads.
GATEWAY_TOPOLOGY = "gatewayTopology"
TOPOLOGY_PROXY_PROTOCOL = "proxyProtocol"
TOPOLOGY_NUM_TRUSTED_PROXIES = "numTrustedProxies"
# Istio docs, "Istio Operator / IstioOperator Options": the mesh config lives in the ConfigMap `istio`,
# key `mesh`; ProxyConfig defaults under `defaultConfig`.
MESH_CONFIGMAP = "istio"
MESH_CONFIGMAP_KEY = "mesh"
MESH_DEFAULT_CONFIG = "defaultConfig"
# Istio docs, "Application Requirements" → "Ports used by Istio": 15021 health checks
# (/healthz/ready), 15020 merged Prometheus telemetry, 15090 Envoy Prometheus, 15000 Envoy admin.
STATUS_PORT = 15021
STATUS_PATH = "/healthz/ready"
MERGED_METRICS_PORT = 15020
ENVOY_PROMETHEUS_PORT = 15090
ENVOY_ADMIN_PORT = 15000
STATUS_PORTS = (STATUS_PORT, ENVOY_PROMETHEUS_PORT, MERGED_METRICS_PORT)
# Istio API reference, networking.istio.io EnvoyFilter (v1alpha3).
ISTIO_NETWORKING_GROUP = "networking.istio.io"
ENVOYFILTER_VERSION = "v1alpha3"

# --- Envoy --------------------------------------------------------------------------------
# Envoy docs, "Proxy Protocol" listener filter (config/listener_filters/proxy_protocol) and its
# API (extensions.filters.listener.proxy_protocol.v3.ProxyProtocol).
PP_FILTER = "envoy.filters.listener.proxy_protocol"
# Envoy 1.14 deprecated the short "well known" names (envoy/source/extensions/filters/listener/
# well_known_names.h history); Istio EnvoyFilters in the field still carry them.
PP_FILTER_DEPRECATED = "envoy.listener.proxy_protocol"
PP_FILTER_NAMES = (PP_FILTER, PP_FILTER_DEPRECATED)
PP_TYPE = "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
PP_TYPE_URL = "type.googleapis.com/" + PP_TYPE
# Envoy docs, "TLS Inspector" listener filter (config/listener_filters/tls_inspector).
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_INSPECTOR_NAMES = (TLS_INSPECTOR, "envoy.listener.tls_inspector")
# Envoy API, ProxyProtocol.allow_requests_without_proxy_protocol.
PP_ALLOW_WITHOUT = "allow_requests_without_proxy_protocol"

# --- AWS Load Balancer Controller ---------------------------------------------------------
# LBC docs, "Service annotations" (kubernetes-sigs.github.io/aws-load-balancer-controller/latest/
# guide/service/annotations/); the in-tree cloud provider reads the same prefix.
LB_ANNOTATION_PREFIX = "service.beta.kubernetes.io/aws-load-balancer-"
ANN_TYPE = LB_ANNOTATION_PREFIX + "type"
ANN_PROXY_PROTOCOL = LB_ANNOTATION_PREFIX + "proxy-protocol"
ANN_TG_ATTRIBUTES = LB_ANNOTATION_PREFIX + "target-group-attributes"
ANN_TARGET_TYPE = LB_ANNOTATION_PREFIX + "nlb-target-type"
ANN_HC_PROTOCOL = LB_ANNOTATION_PREFIX + "healthcheck-protocol"
ANN_HC_PORT = LB_ANNOTATION_PREFIX + "healthcheck-port"
ANN_HC_PATH = LB_ANNOTATION_PREFIX + "healthcheck-path"
# LBC docs, "Resource tagging"/"Tags": the controller tags what it creates with these keys.
LBC_TAG_CLUSTER = "elbv2.k8s.aws/cluster"
LBC_TAG_STACK = "service.k8s.aws/stack"
LBC_TAG_RESOURCE = "service.k8s.aws/resource"
LBC_TAGS = (LBC_TAG_CLUSTER, LBC_TAG_STACK, LBC_TAG_RESOURCE)
# LBC install guide (Helm chart aws-load-balancer-controller): the Deployment's name label.
LBC_DEPLOYMENT_SELECTOR = "app.kubernetes.io/name=aws-load-balancer-controller"
# LBC docs, "TargetGroupBinding" CRD.
TGB_GROUP, TGB_VERSION, TGB_PLURAL = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"

# --- AWS Elastic Load Balancing -----------------------------------------------------------
# ELB docs, "Edit target group attributes for your Network Load Balancer".
ATTR_PROXY_PROTOCOL_V2 = "proxy_protocol_v2.enabled"
ATTR_PRESERVE_CLIENT_IP = "preserve_client_ip.enabled"
# ELB docs, "Health checks for Network Load Balancer target groups": HealthCheckPort value meaning
# "the port each target receives traffic on"; the default HTTP success codes.
HC_TRAFFIC_PORT = "traffic-port"
HC_DEFAULT_MATCHER = "200-399"
# ELB API reference, TargetHealth.Reason: a newly registered target until the first checks decide.
REASON_INITIAL_HEALTH_CHECKING = "Elb.InitialHealthChecking"
REASON_FAILED_HEALTH_CHECKS = "Target.FailedHealthChecks"
# ELB docs, "Update the TCP idle timeout for your Network Load Balancer listener": tcp.idle_timeout.seconds,
# default 350 s (60-6000).
NLB_DEFAULT_IDLE_TIMEOUT_S = 350
# proxy_protocol_v2.client_to_server.header_placement (set through AWS support; istio/istio #36104): the
# default sends the PROXY header with the client's first data.
PLACEMENT_FIRST_PAYLOAD = "on_first_ack_with_payload"

# --- Rollouts: deregistration and pod shutdown (PPD021) -------------------------------------
# ELB docs, "Edit target group attributes for your Network Load Balancer" → "Deregistration delay":
# a deregistering target is `draining` for deregistration_delay.timeout_seconds (default 300 s, 0-3600),
# then `unused`; existing flows may finish meanwhile.
ATTR_DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"
# Same page, "Connection termination on deregistration": with it on, the load balancer closes the open
# connections to a deregistered target at the end of the delay; off (the default for TCP target groups),
# they go on until they close or idle out.
ATTR_CONNECTION_TERMINATION = "deregistration_delay.connection_termination.enabled"
NLB_DEFAULT_DEREGISTRATION_DELAY_S = 300
# How long after DeregisterTargets new flows may still reach the target. AWS documents only that the
# load balancer's view of targets follows the API with a delay (EKS Best Practices Guide, "Load
# Balancing" → "Availability and Pod Lifecycle": the controller's deregistration "can also take time");
# the field measures about two minutes whatever the delay (aws-load-balancer-controller #2366,
# aws/containers-roadmap #470) and up to 180 s (istio/istio #35964). ppdoctor takes 120 s.
NLB_DEREGISTRATION_PROPAGATION_S = 120
# Istio ProxyConfig.terminationDrainDuration (istio.io "ProxyConfig"; pilot-agent drains Envoy this long
# after SIGTERM, then stops it): default 5 s.
ISTIO_TERMINATION_DRAIN_DEFAULT_S = 5
# Kubernetes Pod spec terminationGracePeriodSeconds (kubernetes.io "Pod Lifecycle" → "Termination of
# Pods"): default 30 s; the preStop hook and the SIGTERM handling together get at most this long.
K8S_TERMINATION_GRACE_DEFAULT_S = 30
# kubectl rollout restart writes this pod-template annotation (kubectl source, "rollout restart").
ANN_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
