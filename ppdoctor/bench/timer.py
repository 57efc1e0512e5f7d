"""A sub-millisecond wake-up for an asyncio loop: a Linux ``timerfd`` watched by the selector.

asyncio's own timers cannot schedule sends 250 µs apart: the loop passes its timeout to
``epoll_wait`` in whole milliseconds, rounded up, so ``loop.call_at(t)`` fires up to ~1 ms
late (measured on the lab machine: median 0.84 ms late). A bench that counts sends leaving
more than 1 ms after their scheduled time would then report its own timer as "late".

A ``timerfd`` armed with an absolute ``CLOCK_MONOTONIC`` deadline becomes readable at
that instant (kernel hrtimer, default timer slack 50 µs), and the selector wakes for it
like for any socket. ``time.monotonic_ns()`` reads the same clock on Linux, so schedule
times and the timer agree across processes too. Python 3.11 has no ``os.timerfd_*``
(3.13 does), so the two calls go through ctypes; where that fails (non-Linux) the timer
falls back to ``loop.call_at`` and says so (``precise`` is False).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
from typing import Callable

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


class PreciseTimer:
    """One re-armable absolute deadline on ``time.monotonic_ns()``; calls ``callback()`` when due."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, precise: bool = True) -> None:
        self._loop = loop
        self._callback = callback
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._libc = _libc() if precise else None
        if self._libc is not None:
            fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._readable)
            else:
                self._libc = None

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def arm_at(self, deadline_ns: int) -> None:
        if self._fd >= 0:
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = divmod(max(deadline_ns, 1), 1_000_000_000)
            if self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:  # type: ignore[union-attr]
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(deadline_ns / 1e9, self._fire)

    def disarm(self) -> None:
        if self._fd >= 0:
            self._spec.it_value.tv_sec = self._spec.it_value.tv_nsec = 0
            self._libc.timerfd_settime(self._fd, 0, self._spec_ref, None)  # type: ignore[union-attr]
        elif self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _readable(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:  # re-armed between readiness and the read
            return
        self._callback()

    def _fire(self) -> None:
        self._handle = None
        self._callback()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        elif self._handle is not None:
            self._handle.cancel()
            self._handle = None
