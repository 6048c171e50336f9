"""The shared SIGINT/SIGTERM handling: the first signal asks to stop, the second cancels, handlers go at exit."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from engine.app.stop_signals import stop_on_signals


async def test_first_signal_requests_a_stop_the_second_cancels():
    requested: list[str] = []
    cancelled: list[bool] = []
    got_first = asyncio.Event()

    def request_stop(name: str) -> None:
        requested.append(name)
        got_first.set()

    with pytest.raises(asyncio.CancelledError), stop_on_signals(request_stop, on_cancel=lambda: cancelled.append(True)):
        os.kill(os.getpid(), signal.SIGTERM)
        await got_first.wait()
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.Event().wait()  # only the cancel ends this
    assert requested == ["SIGTERM"] and cancelled == [True]


async def test_extra_handlers_run_and_every_handler_is_removed_at_exit():
    reloads: list[str] = []
    seen = asyncio.Event()

    def reload(name: str) -> None:
        reloads.append(name)
        seen.set()

    with stop_on_signals(lambda _name: None, extra={signal.SIGHUP: reload}):
        os.kill(os.getpid(), signal.SIGHUP)
        await seen.wait()
    assert reloads == ["SIGHUP"]
    loop = asyncio.get_running_loop()
    assert not any(loop.remove_signal_handler(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
