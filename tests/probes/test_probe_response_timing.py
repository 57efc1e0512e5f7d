"""The response time (request sent → first byte back) is the kernel's receive stamp, not the loop's clock.

A loop held by other work (other probes, the TUI) reads the answer late; the kernel stamped it when it
arrived. The server here runs in its own thread so it answers while the client's loop is held.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import pytest

from ppdoctor.probes.model import FailureClass
from ppdoctor.probes.net import http_exchange
from ppdoctor.probes.tcpinfo import METHOD_RX_STAMP

ANSWER_AFTER = 0.1  # the server's own delay, seconds
LOOP_HELD = 1.0  # how long the client's loop is busy, starting before the answer arrives


def _serve_once(listener: socket.socket, how: str) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        time.sleep(ANSWER_AFTER)  # the server's think time: the delay the response timing must report
        if how == "answer":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        elif how == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _exchange_with(how: str):
    listener = socket.create_server(("127.0.0.1", 0))
    server = threading.Thread(target=_serve_once, args=(listener, how), daemon=True)
    server.start()

    async def run():
        # hold the loop from just after the request is sent until well after the answer is in
        asyncio.get_running_loop().call_later(ANSWER_AFTER / 2, time.sleep, LOOP_HELD)
        return await http_exchange("127.0.0.1", listener.getsockname()[1], total_timeout=10.0)

    try:
        return asyncio.run(run())
    finally:
        server.join(timeout=5)
        listener.close()


def test_response_is_stamped_by_the_kernel_while_the_loop_is_held():
    ex = _exchange_with("answer")
    assert ex.status == 200 and ex.failure_class == FailureClass.OK
    assert ex.response_method == METHOD_RX_STAMP == ex.evidence()["response_timing_method"]
    # the loop read the answer only after it was released; the kernel's stamp is from before that
    assert ex.timings_ms["first_byte"] >= LOOP_HELD * 1000 * 0.9
    assert ex.timings_ms["response"] < ex.timings_ms["first_byte"] - LOOP_HELD * 1000 / 2


@pytest.mark.parametrize(("how", "failure"), [("reset", FailureClass.RESET), ("close", FailureClass.EMPTY_REPLY)])
def test_the_stamp_peek_leaves_a_reset_or_an_empty_reply_to_the_read(how, failure):
    ex = _exchange_with(how)
    assert ex.failure_class == failure, ex.detail
    assert "response" not in ex.timings_ms and ex.response_method == ""
