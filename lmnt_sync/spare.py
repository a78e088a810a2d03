"""A spare websocket connection kept open for the next session: ``Speech(preconnect=True)``.

Opening a session costs a TCP connect, a TLS handshake on ``wss://`` and the
websocket upgrade: several round trips before the init message can go out.
LMNT's init message carries the key and every session option, so until it
is sent a connection belongs to no session: one opened ahead of time can
serve the next ``synthesize_streaming`` whatever its voice and format.

A background thread ("lmnt-sync-preconnect") keeps one such connection,
with a receiver thread already started for it (starting a thread blocks
its starter until the thread runs). It opens one whenever there is none, and replaces it after ``max_idle``
seconds, because servers drop idle connections (LMNT does not say when).
``take`` hands the connection over only if the server has sent nothing on it
but keepalive pings (answered then): a server that dropped or closed it has
sent something else. Otherwise the caller connects as usual, so a stale
spare costs one cheap check, never a failed session.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, NamedTuple, Optional

from .errors import LmntError
from .receiver import ReceiverThread
from .transport import Transport

__all__ = ["SpareConnection", "Spare", "MAX_IDLE"]

MAX_IDLE = 30.0  # seconds a spare may idle before it is replaced
# Seconds between handing a spare over and opening the next: the handshake is
# Python work that would compete for the GIL with the new session's start.
REFILL_DELAY = 0.1
_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0  # back-off after failed connects, seconds
_CHECK_TIMEOUT = 1.0  # seconds a frame found on a spare may take to arrive whole


class Spare(NamedTuple):
    """A connection opened ahead of time and the receiver thread waiting to serve it."""

    transport: Transport
    receiver: ReceiverThread

    def discard(self) -> None:
        """Close the connection and let the thread end."""
        self.transport.close()
        self.receiver.release()


class SpareConnection:
    """One connection opened ahead of time, refilled by a background thread.

    Args:
        connect: opens a new connection (blocks; raises LmntError on failure).
        max_idle: seconds after which an unused spare is replaced.
    """

    def __init__(self, connect: Callable[[], Transport], max_idle: float = MAX_IDLE) -> None:
        self._connect = connect
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spare: Optional[Spare] = None
        self._opened_at = 0.0
        self._taken_at = float("-inf")
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lmnt-sync-preconnect", daemon=True)
        self._thread.start()

    def take(self) -> Optional[Spare]:
        """Return the spare if it is ready and its connection still quiet, else None; never blocks.

        The thread then opens the next one.
        """
        with self._lock:
            spare, self._spare = self._spare, None
            now = time.monotonic()
            fresh = now - self._opened_at < self.max_idle
            self._taken_at = now
            self._changed.notify_all()
        if spare is None:
            return None
        if not fresh or not _only_pinged(spare.transport):
            spare.discard()
            return None
        return spare

    def wait_ready(self, timeout: Optional[float]) -> bool:
        """Block until a spare connection is open (or ``timeout`` s pass); True if one is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._spare is not None or self._closed, timeout) and not self._closed

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the spare; idempotent.

        Blocks until the thread ends: at most the connect in progress, if any
        (bounded by its connect timeout), or ``timeout`` seconds.
        """
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
            self._changed.notify_all()
        if spare is not None:
            spare.discard()
            spare.receiver.thread.join(timeout)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        retry = _RETRY_FIRST
        with self._lock:
            while not self._closed:
                if self._spare is None:
                    pause = self._taken_at + REFILL_DELAY - time.monotonic()
                    if pause > 0:
                        self._changed.wait(pause)
                        continue
                    spare = self._open_unlocked()
                    if self._closed:
                        if spare is not None:
                            spare.discard()
                        return
                    if spare is None:  # the server is unreachable: sessions will say why
                        self._changed.wait(retry)
                        retry = min(retry * 2, _RETRY_MAX)
                        continue
                    self._spare, self._opened_at, retry = spare, time.monotonic(), _RETRY_FIRST
                    self._changed.notify_all()
                expires_in = self._opened_at + self.max_idle - time.monotonic()
                if expires_in <= 0 and self._spare is not None:
                    stale, self._spare = self._spare, None
                    stale.discard()
                    continue
                self._changed.wait(expires_in)

    def _open_unlocked(self) -> Optional[Spare]:
        """Connect and start a receiver thread, with the lock released (the caller holds it); None on failure."""
        self._lock.release()
        try:
            transport = self._connect()
            try:
                return Spare(transport, ReceiverThread())
            except BaseException:  # e.g. no thread can be started now
                transport.close()
                raise
        except (LmntError, RuntimeError):
            return None
        finally:
            self._lock.acquire()


def _only_pinged(transport: Transport) -> bool:
    """True if the server sent nothing but pings on this unused connection; reads (and answers) them.

    Blocks only while a frame that has started arriving completes (at most
    ``_CHECK_TIMEOUT``). Servers ping idle websockets (the local server
    every 20 s): such a spare is as good as a quiet one.
    """
    transport.set_io_timeout(_CHECK_TIMEOUT)
    try:
        while transport.wait_readable(0):
            if transport.recv().kind != "ping":  # a close frame, data, or the end of the stream
                return False
    except LmntError:
        return False
    finally:
        transport.set_io_timeout(None)
    return True
