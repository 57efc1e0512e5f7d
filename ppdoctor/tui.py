"""Entry points of the TUI: ``run_default`` (plain ``ppdoctor``) and ``run_lab`` (``ppdoctor --lab``).

They decide what the app opens on and make sure a lab it owns is torn down however the app ends.
Only ``run_lab`` imports the lab (``ppdoctor.lab.handle``); plain ``ppdoctor`` never does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .app import PPDoctorApp
from .config import load_config, missing_target_reason
from .session import IncidentSession

ATTACH_ENV = "PPDOCTOR_LAB_ATTACH"  # state dir of an already running lab (`ppdoctor lab up --detach`)


def run_default(args: Any) -> int:
    """``ppdoctor`` without a sub-command: open on the configured target, or offer the lab."""
    config_path = getattr(args, "config", None)
    config = load_config(config_path)
    reason = missing_target_reason(config, config_path)
    if reason is None:
        from .discovery.target import discover_for_tui

        config, discovery = discover_for_tui(config_path, config)  # one path: used; several: Setup's picker
        app = PPDoctorApp(IncidentSession.open(config, by="tui"), landing="setup")
        app.discovery = discovery
    else:
        app = PPDoctorApp(start_reason=reason)
    return _run(app)


def run_lab(args: Any) -> int:
    """``ppdoctor --lab [--scenario NAME]``: start the lab, open the TUI on it, tear it down on quit.

    With ``$PPDOCTOR_LAB_ATTACH=DIR`` the TUI attaches to a lab already running from DIR
    (``ppdoctor lab up --detach --state-dir DIR``) and leaves it running.
    """
    from .lab.handle import LabHandle

    attach = os.environ.get(ATTACH_ENV)
    lab = LabHandle.attach(Path(attach)) if attach else LabHandle.scratch(getattr(args, "scenario", None))
    return _run(PPDoctorApp(lab=lab))


def _run(app: PPDoctorApp) -> int:
    try:
        result = app.run()
    finally:
        app.engine.close()
        app.bench.close()
        if app.lab is not None:  # given, or started from the start screen
            app.lab.close()
    return int(result or app.return_code or 0)
