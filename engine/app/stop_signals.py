"""SIGINT/SIGTERM for the long commands: the first asks the work to stop (drain and commit), the second
cancels the running task. Shared by the batch runner and the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping

from engine.logs import get_logger

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[str], None], *, on_cancel: Callable[[], None] | None = None,
                    extra: Mapping[signal.Signals, Callable[[str], None]] | None = None) -> Iterator[None]:
    """Install the handlers on the running loop for the ``with`` block (where the platform allows).

    The first SIGINT or SIGTERM logs ``stop_requested`` and calls ``request_stop(signal name)``; a second
    calls ``on_cancel`` and cancels the task that entered the block. ``extra`` maps further signals to
    handlers taking the signal's name (the daemon's SIGHUP reload)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    seen = 0

    def on_stop(name: str) -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            get_logger().warning("stop_requested", signal=name, hint="send it again to cancel")
            request_stop(name)
        elif task is not None:
            if on_cancel is not None:
                on_cancel()
            task.cancel()

    handlers: dict[signal.Signals, Callable[[str], None]] = dict.fromkeys(STOP_SIGNALS, on_stop)
    handlers.update(extra or {})
    for sig, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler, sig.name)
    try:
        yield
    finally:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
