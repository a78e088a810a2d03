"""Websocket keepalive that counts a draining send buffer as a sign of life.

aiohttp's own ``heartbeat`` sends a ping and drops the peer when no pong
arrives within half the interval. A client reading audio slower than the
server makes it (backpressure: a live consumer playing in real time) has
the ping queued behind that audio, so its pong cannot arrive in time and it
is dropped mid-turn. Here a peer counts as alive when

* any frame arrives from it (pongs included: :meth:`Keepalive.heard`), or
* the data queued for it shrank since the last look (the peer is reading
  what we queued). Queued means the transport's buffer plus the kernel's
  socket send queue (``SIOCOUTQ``): the kernel wakes the transport only
  when a third of a send buffer of up to 4 MB is free, so the transport's
  buffer alone can sit unchanged for a second while the peer reads.

After ``interval`` seconds with neither, a ping is sent; after another half
interval with still neither, the connection is reset (the session's reader
then sees it end; the reset also frees the megabytes the kernel may hold
for a peer that stopped reading, where a normal close would keep them). All on the event loop; nothing blocks.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any, Optional, Set

__all__ = ["Keepalive"]

log = logging.getLogger("lmnt_sync.server")


class Keepalive:
    """Pings a quiet websocket and drops it when the peer shows no life.

    Args:
        ws: the prepared ``aiohttp.web.WebSocketResponse``.
        transport: the connection's asyncio transport (its write buffer
            size is what shows the peer reading).
        interval: seconds of silence before a ping (None: never ping).
    """

    def __init__(self, ws: Any, transport: Optional[asyncio.Transport],
                 interval: Optional[float]) -> None:
        self._ws = ws
        self._transport = transport
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._alive_at = self._loop.time()
        self._buffered = 0
        self._task: Optional[asyncio.Task[None]] = None
        self._pings: Set[asyncio.Task[None]] = set()

    def start(self) -> Keepalive:
        """Start watching (no-op without an interval or a transport)."""
        if self._interval and self._transport is not None:
            self._task = asyncio.ensure_future(self._watch())
        return self

    def heard(self) -> None:
        """Record that a frame (of any kind) arrived from the peer."""
        self._alive_at = self._loop.time()

    async def stop(self) -> None:
        """Stop watching and wait for the watcher to end."""
        for task in [self._task, *self._pings]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._pings]:
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._task = None

    def _draining(self) -> bool:
        """Return True when the data queued for the peer shrank since the last call."""
        assert self._transport is not None
        size = self._transport.get_write_buffer_size() + _kernel_queue(self._transport)
        shrank = size < self._buffered
        self._buffered = size
        return shrank

    async def _watch(self) -> None:
        assert self._interval is not None
        interval = self._interval
        tick = interval / 4  # checks: a few timer wake-ups per interval
        pinged_at: Optional[float] = None
        while not self._ws.closed:
            await asyncio.sleep(tick)
            now = self._loop.time()
            if self._draining():
                self._alive_at = now
            quiet = now - self._alive_at
            if pinged_at is not None and self._alive_at >= pinged_at:
                pinged_at = None  # life since the ping: it did its job
            if pinged_at is not None and now - pinged_at >= interval / 2:
                log.info("dropping a websocket client silent for %.1f s", quiet)
                _reset(self._transport)
                return
            if pinged_at is None and quiet >= interval:
                pinged_at = now
                self._ping()

    def _ping(self) -> None:
        # In a task of its own: the frame is written at once, but the write
        # may then wait for the buffer to drain, and the watch must go on.
        task = asyncio.ensure_future(self._ws.ping())
        self._pings.add(task)
        task.add_done_callback(self._ping_done)

    def _ping_done(self, task: asyncio.Task[None]) -> None:
        self._pings.discard(task)
        if not task.cancelled():
            task.exception()  # a ping to a vanished peer fails; nothing to do


try:
    import fcntl
    import termios
    _OUTQ = getattr(termios, "TIOCOUTQ", None)  # == SIOCOUTQ on Linux
except ImportError:  # Windows: the transport's buffer is all we can see
    _OUTQ = None


def _kernel_queue(transport: asyncio.Transport) -> int:
    """Return the bytes in the socket's kernel send queue (0 if unknown)."""
    sock = transport.get_extra_info("socket")
    if _OUTQ is None or sock is None:
        return 0
    try:
        queued: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
        return queued
    except (OSError, ValueError):  # closed, or not a TCP socket
        return 0


def _reset(transport: Optional[asyncio.Transport]) -> None:
    """Abort the connection with a TCP reset (linger 0): nothing stays queued."""
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed
    transport.abort()
