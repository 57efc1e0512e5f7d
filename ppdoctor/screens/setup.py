"""Setup: the target (prefilled from the config), kube context and AWS profile pickers, and the topology as known so far."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ..config import TargetConfig, split_host_port
from ..diagnosis.engine import FactView
from ..errors import ConfigError
from ..widgets.safe import clean, safe_text
from ..widgets.topology import PathView
from .base import WorkflowScreen

DEFAULT_CHAIN = ""  # Select value for "no profile: the default credential chain"


@dataclass
class Field:
    key: str  # "section.attribute" in TargetConfig
    label: str
    placeholder: str = ""


AWS_FIELDS = (
    Field("nlb.address", "NLB address", "nlb-123.elb.us-east-1.amazonaws.com:80"),
    Field("nlb.arn", "NLB ARN", "arn:aws:elasticloadbalancing:…:loadbalancer/net/…"),
    Field("nlb.name", "NLB name", "istio-ingress-nlb"),
    Field("aws.region", "AWS region", "us-east-1"),
    Field("aws.endpoint_url", "AWS endpoint", "(AWS default)"),
    Field("aws.target_group_arns", "target groups", "ARN[, ARN…] (discovered when empty)"),
)
KUBE_FIELDS = (
    Field("kubernetes.kubeconfig", "kubeconfig", "~/.kube/config"),
    Field("kubernetes.namespace", "namespace", "istio-system"),
    Field("kubernetes.gateway_deployment", "deployment", "istio-ingressgateway"),
    Field("kubernetes.gateway_service", "service", "istio-ingressgateway"),
    Field("gateway.direct", "gateway pod", "HOST:PORT or port-forward"),
    Field("gateway.admin", "Envoy admin", "HOST:PORT or port-forward"),
    Field("echo.path", "echo path", "/get"),
)


def _get(config: TargetConfig, key: str) -> str:
    section, _, attr = key.partition(".")
    value = getattr(getattr(config, section), attr)
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def _input_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


@dataclass
class PickerChoices(Message):
    contexts: list[str]
    current_context: str
    profiles: list[str]
    notes: list[str]


def read_kube_contexts(kubeconfig: str) -> tuple[list[str], str, str]:
    """(context names, current-context, note) from a kubeconfig file, without the kubernetes client."""
    import yaml

    path = Path(kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
    path = path.expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return [], "", f"no kubeconfig at {path}"
    except (OSError, yaml.YAMLError) as exc:
        return [], "", f"cannot read {path}: {exc}"
    if not isinstance(data, dict):
        return [], "", f"{path} is not a kubeconfig"
    names = [str(c.get("name")) for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    return names, str(data.get("current-context") or ""), ""


def read_aws_profiles() -> tuple[list[str], str]:
    """Profile names from the shared AWS config files (boto3 reads them; no API call is made)."""
    try:
        import boto3

        return sorted(boto3.session.Session().available_profiles), ""
    except Exception as exc:  # a broken ~/.aws/config must not stop the setup screen
        return [], f"cannot list AWS profiles: {exc}"


class SetupScreen(WorkflowScreen):
    MODE = "setup"
    AUTO_FOCUS = None  # digits and t switch screens until a field is clicked or tabbed into
    HELP = ("The target is one client-IP path: the NLB and its target group, the cluster, the gateway Deployment and "
            "Service, how to reach a gateway pod directly, and the echo path. Fields start from the config file and "
            "the environment; ctrl+s applies them to this session. The topology fills in as probes run.")
    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply target", id="setup.apply",
                tooltip="Use these settings for this session (earlier observations are cleared)"),
        Binding("ctrl+r", "reload_pickers", "Reload pickers", id="setup.reload",
                tooltip="Read the kube contexts and AWS profiles again"),
        Binding("ctrl+g", "go_probes", "Probes", id="setup.probes", tooltip="Continue to the probes"),
        Binding("escape", "leave_field", "Leave field", show=False, id="setup.leave_field",
                tooltip="Take the focus off the field so 1–6 and t switch screens again"),
    ]

    def compose_body(self) -> ComposeResult:
        yield PathView(id="setup-path")
        with Horizontal(id="setup-forms"):
            with VerticalScroll(id="setup-aws", classes="panel"):
                with Grid(classes="form"):
                    yield Label("name")
                    yield Input(id="f-name", compact=True)
                    for field in AWS_FIELDS:
                        yield Label(field.label)
                        yield Input(id=_input_id(field.key), placeholder=field.placeholder, compact=True)
                    yield Label("AWS profile")
                    yield Select([], id="aws-profile", prompt="default credential chain", allow_blank=True, compact=True)
            with VerticalScroll(id="setup-kube", classes="panel"):
                with Grid(classes="form"):
                    yield Label("kube context")
                    yield Select([], id="kube-context", prompt="current context", allow_blank=True, compact=True)
                    for field in KUBE_FIELDS:
                        yield Label(field.label)
                        yield Input(id=_input_id(field.key), placeholder=field.placeholder, compact=True)
                with Horizontal(id="setup-buttons"):
                    yield Button("Apply target", id="setup-apply", variant="primary", tooltip="ctrl+s")
                    yield Button("Probes →", id="setup-probes", tooltip="ctrl+g, or 2")
                yield Static(id="setup-notes")

    def on_mount(self) -> None:
        self.query_one("#setup-aws").border_title = "NLB and AWS"
        self.query_one("#setup-kube").border_title = "Kubernetes and gateway"
        self.follow_cursor_blink()
        self._fill(self.ppd.config)
        self.ppd.probes_changed.subscribe(self, lambda _n: self._refresh_topology())
        self.ppd.config_changed.subscribe(self, self._config_changed)
        self._refresh_topology()
        self.action_reload_pickers()
        from ..widgets.pathpicker import offer_discovered_paths

        offer_discovered_paths(self)  # several discovered paths: the operator picks one

    def _fill(self, config: TargetConfig) -> None:
        self.query_one("#f-name", Input).value = config.name
        for field in (*AWS_FIELDS, *KUBE_FIELDS):
            self.query_one(f"#{_input_id(field.key)}", Input).value = _get(config, field.key)

    def _config_changed(self, config: TargetConfig) -> None:
        self._fill(config)
        self._refresh_topology()

    def _refresh_topology(self) -> None:
        app = self.ppd
        self.query_one(PathView).show(app.config, FactView(app.observations.values()))
        self.query_one("#setup-path").border_title = "Topology — what is known so far (fills in as probes run)"

    # --- pickers -------------------------------------------------------------------------------

    def action_reload_pickers(self) -> None:
        kubeconfig = self.query_one(f"#{_input_id('kubernetes.kubeconfig')}", Input).value.strip()
        self.load_pickers(kubeconfig)

    @work(thread=True, exclusive=True, exit_on_error=False, group="discovery")
    def load_pickers(self, kubeconfig: str) -> None:
        contexts, current, kube_note = read_kube_contexts(kubeconfig)
        profiles, aws_note = read_aws_profiles()
        self.post_message(PickerChoices(contexts, current, profiles, [n for n in (kube_note, aws_note) if n]))

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.ppd.show_error("Reading kube contexts / AWS profiles failed", event.worker.error or "unknown error")

    @on(PickerChoices)
    def _choices(self, message: PickerChoices) -> None:
        config = self.ppd.config
        contexts = list(message.contexts)
        if config.kubernetes.context and config.kubernetes.context not in contexts:
            contexts.append(config.kubernetes.context)
        context_select = self.query_one("#kube-context", Select)
        context_select.set_options(
            (safe_text(name + ("  (current)" if name == message.current_context else "")), name) for name in contexts)
        wanted = config.kubernetes.context or message.current_context
        if wanted in contexts:
            context_select.value = wanted
        profiles = list(message.profiles)
        if config.aws.profile and config.aws.profile not in profiles:
            profiles.append(config.aws.profile)
        profile_select = self.query_one("#aws-profile", Select)
        profile_select.set_options((safe_text(p), p) for p in profiles)
        if config.aws.profile in profiles:
            profile_select.value = config.aws.profile
        notes = Text()
        notes.append(f"{len(message.contexts)} kube context(s), {len(message.profiles)} AWS profile(s) found", style="dim")
        for note in message.notes:
            notes.append("\n")
            notes.append_text(safe_text(note, "yellow"))
        self.query_one("#setup-notes", Static).update(notes)

    # --- apply ---------------------------------------------------------------------------------

    def build_config(self) -> TargetConfig:
        """The config as the form says; raises ConfigError naming the bad field."""
        base = self.ppd.config
        sections: dict[str, dict[str, Any]] = {}
        for field in (*AWS_FIELDS, *KUBE_FIELDS):
            section, _, attr = field.key.partition(".")
            raw = self.query_one(f"#{_input_id(field.key)}", Input).value.strip()
            value: Any = raw
            if isinstance(getattr(getattr(base, section), attr), tuple):
                value = tuple(part.strip() for part in raw.split(",") if part.strip())
            sections.setdefault(section, {})[attr] = value
        profile = self.query_one("#aws-profile", Select).value
        context = self.query_one("#kube-context", Select).value
        sections["aws"]["profile"] = profile if isinstance(profile, str) else DEFAULT_CHAIN
        sections["kubernetes"]["context"] = context if isinstance(context, str) else ""
        if sections["nlb"]["address"]:
            split_host_port(sections["nlb"]["address"], what="NLB address")
        for attr in ("direct", "admin"):
            value = sections["gateway"][attr] or "port-forward"
            sections["gateway"][attr] = value
            if value != "port-forward":
                split_host_port(value, what=f"gateway {attr}")
        name = self.query_one("#f-name", Input).value.strip() or base.name
        return replace(base, name=name, **{s: replace(getattr(base, s), **values) for s, values in sections.items()})

    @on(Button.Pressed, "#setup-apply")
    def action_apply(self) -> None:
        try:
            config = self.build_config()
        except ConfigError as exc:
            self.ppd.say(str(exc), severity="error", title="Target not applied")
            return
        if config == self.ppd.config:
            self.ppd.say("target unchanged")
            return
        self.ppd.set_config(config)
        self.ppd.say(f"target applied: {clean(config.name)}; earlier observations were cleared")

    def action_leave_field(self) -> None:
        self.set_focus(None)

    @on(Button.Pressed, "#setup-probes")
    def action_go_probes(self) -> None:
        self.ppd.switch_mode("probes")
