"""Command palette: every action of the app, with what makes sense on the current screen first."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..fixes.choose import suggest_fixes
from ..fixes.model import FIX_TITLES
from ..probes import PROBES

Command = tuple[str, str, Callable[[], Any]]  # (title, help, callback)


class PPDoctorCommands(Provider):
    def _commands(self) -> Iterator[Command]:
        app: Any = self.app
        mode = app.current_mode
        if getattr(app, "session", None) is None:
            yield ("Start the lab", "start the embedded lab with the default scenario",
                   partial(app.launch_lab, None))
            yield ("Help: keys and workflow", "every key of every screen", app.action_help)
            return
        # this screen's own keys first (every Binding is also a command)
        for binding in getattr(self.screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description and not binding.action.startswith("app."):
                yield (binding.description, binding.tooltip, partial(self.screen.run_action, binding.action))
        screens = [("setup", "Setup", "target, kube context, AWS profile, topology"),
                   ("probes", "Probes", "run probes and read their evidence"),
                   ("diagnosis", "Diagnosis", "findings, the PP × preservation matrix, the broken hop"),
                   ("fix", "Fix", "plan, confirm, apply, verify, roll back"),
                   ("report", "Report", "export Markdown / JSON / HTML"),
                   ("timeline", "Timeline", "every event of this incident"),
                   ("bench", "Bench", "PP off vs PP on under load: latency table and plot")]
        if mode == "probes":
            yield ("Run the highlighted probe", "Enter on the Probes screen", lambda: app.screen.action_run_selected())
        yield ("Run all probes", "run every probe concurrently, then diagnose", app.probes.start_all)
        yield ("Cancel running probes", "stop every probe that is still waiting", app.probes.cancel_all)
        yield ("Diagnose now", "run the rules on what has been observed", app.probes.diagnose)
        for fix, finding in suggest_fixes(app.findings):
            yield (f"Plan {fix}", f"suggested by {finding}: {FIX_TITLES.get(fix, '')}", partial(self._plan, fix))
        if app.bench.running:
            yield ("Stop the bench", "the table keeps what was measured", app.bench.stop)
        yield ("Apply the current plan…", "shows the exact changes and asks first", app.fixes.request_apply)
        yield ("Roll back applied changes…", "restore this incident's before-values", app.fixes.request_rollback)
        for fmt, label in (("md", "Markdown"), ("json", "JSON"), ("html", "HTML")):
            yield (f"Export report as {label}", f"write ppdoctor-report.{fmt} (path on the Report screen)",
                   partial(self._export, fmt))
        for target, label, help_text in screens:
            if target != mode:
                yield (f"Go to {label}", help_text, partial(app.switch_mode, target))
        yield ("Help: keys and workflow", "every key of every screen", app.action_help)
        for name, info in PROBES.items():
            yield (f"Run probe {name}", info.description, partial(app.probes.start, name))
        for fix, title in FIX_TITLES.items():
            yield (f"Plan {fix}", title, partial(self._plan, fix))

    def _plan(self, fix: str) -> None:
        app: Any = self.app
        app.fixes.plan_fix(fix)
        app.switch_mode("fix")

    def _export(self, fmt: str) -> None:
        from .report import default_report_name

        app: Any = self.app
        app.export_report(default_report_name(app.config.name, fmt))

    def _unique(self) -> list[Command]:
        seen: set[str] = set()
        out = []
        for command in self._commands():
            if command[0] not in seen:
                seen.add(command[0])
                out.append(command)
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._unique()[:14]:
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._unique():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
