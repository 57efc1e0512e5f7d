"""`ppdoctor probe rollout` restarts the gateway: without a yes it changes nothing; with --yes it runs and the
incident records who confirmed it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ppdoctor.constants import ANN_RESTARTED_AT

PPDOCTOR = [sys.executable, "-m", "ppdoctor.cli"]


def _restarted_at(lab) -> str | None:
    from kubernetes import client

    k = lab.config.kubernetes
    dep = client.AppsV1Api(lab.kube()).read_namespaced_deployment(k.gateway_deployment, k.namespace)
    return (dep.spec.template.metadata.annotations or {}).get(ANN_RESTARTED_AT)


def _run(lab, state, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(state)
    return subprocess.run([*PPDOCTOR, "--config", lab.endpoints["config"], "probe", "rollout", *extra],
                          stdin=subprocess.DEVNULL, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.lab
def test_rollout_probe_needs_a_yes(lab_pool, tmp_path):
    lab = lab_pool.get("healthy", fresh=True)
    before = _restarted_at(lab)
    declined = _run(lab, tmp_path / "state")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert "not confirmed" in declined.stderr and "pass --yes" in declined.stderr
    assert "nothing was changed" in declined.stdout and "restarts the gateway Deployment" in declined.stdout
    assert _restarted_at(lab) == before

    confirmed = _run(lab, tmp_path / "state", "--yes", "--json")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    obs = json.loads(confirmed.stdout)["observations"][0]
    assert obs["probe"] == "rollout" and obs["status"] == "ok", obs
    assert _restarted_at(lab) not in (None, before)
    journal = "\n".join(p.read_text() for p in (tmp_path / "state").rglob("*.jsonl"))
    assert "probe rollout declined by the user" in journal
    assert "confirmed by --yes" in journal
