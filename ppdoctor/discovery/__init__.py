"""Zero-config discovery: find the NLB → Istio ingress gateway paths from a kube context and AWS credentials.

UI-free; boto3 and kubernetes are imported only when discovery runs (through probes.context).
"""
