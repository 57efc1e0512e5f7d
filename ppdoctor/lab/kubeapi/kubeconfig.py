"""A kubeconfig for the lab API server, loadable by ``kubernetes.config.load_kube_config``."""

from __future__ import annotations

import base64
import os
from typing import Any

import yaml


def kubeconfig_dict(
    server_url: str,
    token: str | None,
    *,
    context: str = "ppdoctor-lab",
    namespace: str = "istio-system",
    ca_pem: bytes | None = None,
) -> dict[str, Any]:
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": server_url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": f"{context}-user", "user": user}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": f"{context}-user", "namespace": namespace},
            }
        ],
        "current-context": context,
    }


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    token: str | None,
    context: str = "ppdoctor-lab",
    namespace: str = "istio-system",
    *,
    ca_pem: bytes | None = None,
) -> str:
    """Write the kubeconfig (mode 0600, it holds the token) and return its path."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    text = yaml.safe_dump(kubeconfig_dict(server_url, token, context=context, namespace=namespace, ca_pem=ca_pem), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
