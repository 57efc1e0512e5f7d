"""TUI test helpers: rendered screen text, deterministic environment (no AWS profiles, no kubeconfig from $HOME)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_host_aws_or_kube(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.getbasetemp() / "no-such-aws-file"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)


def screen_lines(app: Any) -> list[str]:
    """What the terminal shows right now, one string per row (the compositor's output)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen_text(app: Any) -> str:
    return "\n".join(screen_lines(app))


async def settle(pilot: Any, app: Any) -> None:
    """Let messages, workers and screen switches finish."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def until(pilot: Any, predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Pause until predicate() is true or timeout seconds pass; return the last value so the caller asserts it.

    settle() cannot wait for a worker that has not started yet: under a loaded CI machine a screen's on_mount worker
    may start after settle() has already seen no workers, so a test that needs the worker's result waits for it."""
    loops = max(1, int(timeout / step))
    for _ in range(loops):
        if predicate():
            return True
        await pilot.pause(step)
    return bool(predicate())
