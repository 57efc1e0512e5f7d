"""ppdoctor: find out why clients behind an AWS NLB and an Istio ingress gateway lose their IP."""

__version__ = "0.1.0"
