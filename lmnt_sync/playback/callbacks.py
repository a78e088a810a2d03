"""Handing user callbacks to the thread that should run them (GUI main loops).

Background threads of lmnt_sync never call GUI code directly: they hand the
call to an *executor*, any object with ``submit(fn, *args)`` such as a
``concurrent.futures`` executor or the ``MainThreadExecutor`` below, which a
Tk/Qt/pygame main loop drains on its own thread.
"""
from __future__ import annotations

import logging
import queue
from typing import Any, Callable, Optional

__all__ = ["dispatch", "MainThreadExecutor", "tk_executor"]

log = logging.getLogger("lmnt_sync.callbacks")


def dispatch(executor: Any, fn: Optional[Callable[..., Any]], *args: Any) -> None:
    """Run ``fn(*args)`` through ``executor`` (or here, when it is None).

    Never raises: a failing callback must not kill the background thread
    that fires it, so its exception is logged instead.
    """
    if fn is None:
        return
    try:
        if executor is None:
            fn(*args)
        else:
            executor.submit(fn, *args)
    except Exception:
        log.exception("callback %r failed", fn)


class MainThreadExecutor:
    """Queues calls from any thread; ``run_pending()`` runs them on the caller's thread.

    Call ``run_pending()`` from the GUI main loop (a timer), so callbacks
    touch widgets on the thread that owns them. ``submit`` never blocks.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; thread-safe, returns at once."""
        self._calls.put((fn, args, kwargs))

    def run_pending(self) -> int:
        """Run the calls queued so far, in order, on this thread; return how many ran.

        A call that raises is logged and the others still run.
        """
        ran = 0
        while True:
            try:
                fn, args, kwargs = self._calls.get_nowait()
            except queue.Empty:
                return ran
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("callback %r failed", fn)
            ran += 1


def tk_executor(widget: Any, interval_ms: int = 20) -> MainThreadExecutor:
    """Return an executor whose calls run in a Tk main loop, polled every ``interval_ms``.

    Tk is not thread-safe, so other threads only queue; the Tk thread runs
    the queue from ``widget.after``. Polling stops when the widget is destroyed.
    """
    executor = MainThreadExecutor()

    def poll() -> None:
        executor.run_pending()
        try:
            widget.after(interval_ms, poll)
        except Exception:  # the window was destroyed: nothing left to poll for
            pass

    widget.after(interval_ms, poll)
    return executor
