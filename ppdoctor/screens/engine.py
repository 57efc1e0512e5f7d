"""The UI's bridge to the engine: one background asyncio loop that owns the IncidentSession.

The session is confined to this loop's thread: probes, diagnosis, plans, changes, reports
and timeline notes all run there, so the engine's plain dicts and lists are never mutated
and iterated from two threads at once. The UI keeps its own copies, delivered by messages.
Coroutines submitted here keep running while the UI thread stays free for input; cancelling
the awaiting worker cancels the engine task (``run`` chains the cancellation through).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")


class EngineLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._protected: set[concurrent.futures.Future[Any]] = set()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop,), name="ppdoctor-engine", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the engine loop (callable from any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())  # type: ignore[arg-type]

    async def run(self, coro: Awaitable[T], *, protect: bool = False) -> T:
        """Await an engine coroutine from the UI loop; cancelling the caller cancels the engine task.

        ``protect``: writes to AWS/Kubernetes are never cancelled half-way — not by the caller, and
        ``close`` gives them time to finish (their before-values must reach the incident record).
        """
        future = self.submit(coro)
        if protect:
            self._protected.add(future)
            future.add_done_callback(self._protected.discard)
            return await asyncio.shield(asyncio.wrap_future(future))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run a plain function on the engine thread (for session reads/writes); returns a future."""

        async def invoke() -> T:
            return fn(*args, **kwargs)

        return self.submit(invoke())

    def close(self, timeout: float = 2.0, *, protected_timeout: float = 20.0) -> None:
        """Let protected work (changes being applied) finish, cancel the rest, stop the loop."""
        pending = [f for f in list(self._protected) if not f.done()]
        if pending:
            concurrent.futures.wait(pending, timeout=protected_timeout)
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:  # already closed
            return
        thread.join(timeout)
