"""Log hygiene for a server facing the internet: no secrets, no floods.

Two filters, installed by :func:`install` on the server's loggers:

* :class:`WithholdRequestBytes`: aiohttp logs a request it cannot parse
  with a traceback whose message quotes the offending header line, which
  may be the ``X-API-Key`` line (a key with a stray newline is exactly
  such a line). The record keeps its text but loses the quoted bytes.
* :class:`RateLimit`: the same message (same logger, same format string)
  is logged at most ``burst`` times per ``period`` seconds; the next one
  let through says how many were suppressed. A flood of bad connections
  then writes a few lines a minute, not tens of megabytes.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Tuple

__all__ = ["WithholdRequestBytes", "RateLimit", "install", "LOGGERS"]

#: Loggers the server writes to: ours, and aiohttp's connection-level one.
LOGGERS = ("lmnt_sync.server", "aiohttp.server", "aiohttp.web", "aiohttp.websocket")


class WithholdRequestBytes(logging.Filter):
    """Drop the traceback and quoted bytes of an unparsable request."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # str(exc) quotes the raw line (perhaps a key); keep the gist only.
            gist = (exc.message or "").strip().splitlines()[0].rstrip(":") if exc.message else ""
            text = record.getMessage()
            record.msg = "%s: %s %s (request bytes withheld)"
            record.args = (text, type(exc).__name__, gist[:80])
            record.exc_info = None
            record.exc_text = None
        return True


class RateLimit(logging.Filter):
    """Let each message through at most ``burst`` times per ``period`` s.

    Thread-safe. Messages are told apart by logger name and format string
    (not the arguments), so one kind of fault is one message.
    """

    def __init__(self, burst: int = 10, period: float = 60.0) -> None:
        super().__init__()
        self._burst = burst
        self._period = period
        self._lock = threading.Lock()
        # key -> (window start, let through in the window, suppressed since the last one)
        self._seen: Dict[Tuple[str, str], List[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            start, passed, suppressed = self._seen.get(key, (now, 0, 0))
            if now - start >= self._period:
                start, passed = now, 0
            if passed >= self._burst:
                self._seen[key] = [start, passed, suppressed + 1]
                return False
            self._seen[key] = [start, passed + 1, 0]
            if len(self._seen) > 10_000:  # bounded, whatever the callers log
                self._seen.clear()
        if suppressed:
            record.msg = f"{record.msg} [%d similar messages suppressed]"
            record.args = (*_as_tuple(record.args), int(suppressed))
        return True


def _as_tuple(args: object) -> Tuple[object, ...]:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


_installed = threading.Lock()


def install() -> None:
    """Add both filters to :data:`LOGGERS` (once per process; idempotent)."""
    with _installed:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RateLimit) for f in logger.filters):
                logger.addFilter(WithholdRequestBytes())  # first: the rate limit keys on its format
                logger.addFilter(RateLimit())
