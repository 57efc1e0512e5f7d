"""The lab's moto server: moto in server mode on loopback, boto3 clients for it, request counting.

boto3 talks HTTP to a moto server running in this process (``MotoServer``), exactly as it would
talk to AWS with ``--endpoint-url``. A WSGI middleware counts the requests moto answers (except
the NLB emulator's own reads), so the emulator re-reads the state only after someone changed it.
moto and boto3 are imported lazily: this module is imported on ppdoctor's start-up path.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from ..errors import LabError
from . import addresses
from .aws_health import _HEALTH, TARGET_STATES, TargetHealthRecord

log = logging.getLogger(__name__)

# moto accepts any credentials; these keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

_INSTALL_HINT = "pip install 'ppdoctor[lab]'"

# The NLB emulator's own reads carry this in their User-Agent, so that the lab's moto server
# does not count them as activity (``MotoServer.activity``): the emulator re-reads the state
# only after someone else has talked to moto.
EMULATOR_USER_AGENT = "ppdoctor-lab-nlb"

_CLIENTS_LOCK = threading.Lock()
_botocore_session: Any = None


def aws_client(
    service: str, endpoint_url: str, region: str = "us-east-1", *, user_agent_extra: str | None = None
) -> Any:
    """A boto3-compatible client for the lab's moto server; safe to call from any thread.

    One private botocore session serves every lab client (service models load once), and
    it ignores the operator's AWS config files and profile: the lab talks to moto only.
    ``user_agent_extra`` is appended to the User-Agent (``EMULATOR_USER_AGENT``: the NLB
    emulator's reads, not counted as activity).
    """
    global _botocore_session
    import botocore.session
    from botocore.config import Config

    with _CLIENTS_LOCK:
        if _botocore_session is None:
            # No AWS_PROFILE lookup (a profile missing from the empty config would be an error).
            session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
            session.set_config_variable("config_file", os.devnull)
            session.set_config_variable("credentials_file", os.devnull)
            _botocore_session = session
        return _botocore_session.create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                user_agent_extra=user_agent_extra,
            ),
            **DUMMY_CREDENTIALS,
        )


class _ActivityCounter:
    """WSGI middleware: counts the requests moto has answered, except the NLB emulator's reads.

    The count goes up once moto has handled a request (its backend changed, if the request
    changes anything) and before the response is sent, so a caller whose boto3 call returned
    already sees it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self.app(environ, start_response)
        finally:
            if EMULATOR_USER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
                with self._lock:
                    self.count += 1


class MotoServer:
    """moto's ``ThreadedMotoServer`` on loopback with a dynamic port, quiet, health-aware."""

    def __init__(self, host: str = addresses.CONTROL_PLANE_IP, port: int = 0, *, region: str = "us-east-1") -> None:
        self.host = host
        self.region = region
        self._requested_port = port
        self._server: Any = None
        self._port: int | None = None
        # Handler threads (ended ones pruned as new ones start) and their client connections: werkzeug's
        # handler threads are daemons that socketserver never joins, so one may still be finishing its last
        # response — or reading a kept-alive connection — when shutdown returns.
        self._connections: dict[threading.Thread, Any] = {}
        self._connections_lock = threading.Lock()
        self._activity = _ActivityCounter(None)

    # lifecycle

    def start(self) -> str:
        """Start the server; returns ``endpoint_url``."""
        if self._server is not None:
            return self.endpoint_url
        try:
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server

            import moto.elbv2.models  # noqa: F401  (the health override patches it)
        except ImportError as exc:
            raise LabError("moto is not installed", hint=_INSTALL_HINT) from exc
        except Exception as exc:  # botocore's ProfileNotFound and the like, raised while moto loads
            raise LabError(
                f"moto failed to load: {exc}",
                hint="moto reads the AWS profile when it loads: unset AWS_PROFILE or name an existing profile",
            ) from exc

        connections, connections_lock = self._connections, self._connections_lock

        class QuietRequestHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
            # werkzeug logs every request to stderr; the lab's moto is an implementation detail.
            def log(self, type: str, message: str, *args: Any) -> None:
                log.debug("moto %s: " + message, type, *args)

            def setup(self) -> None:
                super().setup()
                with connections_lock:
                    for ended in [t for t in connections if not t.is_alive()]:
                        del connections[ended]
                    connections[threading.current_thread()] = self.connection

        activity = self._activity

        class LabMotoServer(ThreadedMotoServer):  # type: ignore[misc, valid-type]
            startup_error: BaseException | None = None

            def _server_entry(self) -> None:
                activity.app = DomainDispatcherApplication(create_backend_app)
                app = activity
                try:
                    self._server = make_server(
                        self._ip_address, self._port, app, True, request_handler=QuietRequestHandler
                    )
                # werkzeug exits (SystemExit) on a busy port; moto's own entry would die here and
                # leave start() waiting forever.
                except (OSError, SystemExit) as exc:
                    self.startup_error = exc
                    self._server_ready_event.set()
                    return
                self._server_ready_event.set()
                self._server.serve_forever()

        server = LabMotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        server.start()
        if server.startup_error is not None:
            server._thread.join()
            error = server.startup_error
            reason = "the address is in use" if isinstance(error, SystemExit) else str(error)
            raise LabError(
                f"cannot start moto on {self.host}:{self._requested_port}: {reason}",
                hint="choose another port, or port 0 for a free one",
            ) from server.startup_error
        self._port = server.get_host_and_port()[1]
        self._server = server
        _HEALTH.acquire()
        return self.endpoint_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        _HEALTH.release()
        server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()
        # End the client connections still open and wait for every handler thread, so stop() returns with
        # none left (not when the clients happen to close their connections).
        with self._connections_lock:
            open_now = list(self._connections.items())
            self._connections.clear()
        for thread, conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
            thread.join(timeout=5)

    def __enter__(self) -> "MotoServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LabError("the lab's moto server has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint_url, self.region)

    @property
    def activity(self) -> int:
        """How many requests this server has answered, not counting the NLB emulator's reads
        (``EMULATOR_USER_AGENT``). Unchanged: nothing but the emulator has talked to moto, so
        nothing the emulator reads has changed (moto changes none of it by itself)."""
        return self._activity.count

    # target health

    def set_target_health(
        self,
        tg_arn: str,
        target_id: str,
        port: int | str,
        state: str,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        """What DescribeTargetHealth reports for one registered target from now on."""
        if state not in TARGET_STATES:
            raise LabError(f"unknown target health state {state!r}; allowed: {', '.join(TARGET_STATES)}")
        _HEALTH.set(tg_arn, target_id, port, TargetHealthRecord(state, reason, description))

    def clear_target_health(self, tg_arn: str, target_id: str, port: int | str) -> None:
        """Forget a target's health: it reads ``initial`` again (e.g. after deregistration)."""
        _HEALTH.clear(tg_arn, target_id, port)

    def set_time_scale(self, tg_arn: str, scale: float) -> None:
        """The lab's time factor for this target group (its emulator's): how long a deregistered target is listed
        ``draining`` (the deregistration delay × scale)."""
        _HEALTH.set_time_scale(tg_arn, scale)

    def target_health(self, tg_arn: str, target_id: str, port: int | str) -> TargetHealthRecord:
        return _HEALTH.get(tg_arn, target_id, port)

