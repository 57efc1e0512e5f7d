"""The embedded lab: an AWS NLB + Istio ingress gateway world on loopback (moto, a Kubernetes API, real Envoy)."""
