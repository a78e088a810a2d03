"""The receiver thread of a streaming session and the state it shares.

``SessionState`` is everything the caller's thread and the receiver thread
share, guarded by one lock (``state.lock``) that is never held while blocking
on the network, on the queue, or in user code. ``run_receiver`` is the
thread's body: it reads frames, turns them into events with the sans-I/O
protocol, queues audio for the caller, and keeps the connection alive with
pings. It never raises into nowhere: it records the first error, closes the
transport and always ends by putting an end marker on the queue.

Deliberately, the thread's target is a plain function over ``SessionState``
rather than a method of the public connection object, so an abandoned
connection can still be garbage-collected (and its finalizer close it).
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, Optional

from . import protocol as p
from .errors import (
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
    SessionError,
)
from .transport import Transport

__all__ = ["SessionState", "QueueItem", "run_receiver", "END", "ERROR", "MESSAGE"]

MESSAGE, ERROR, END = "message", "error", "end"
QueueItem = tuple  # (MESSAGE, reset_epoch, dict) | (ERROR, exc) | (END, None)

_PUT_POLL = 0.05  # how often a blocked put re-checks for close(), in seconds


class SessionState:
    """State shared by the caller's threads and the receiver thread.

    Attributes guarded by ``lock``: ``protocol`` (sends and receives),
    ``error``, ``ended``, ``request_id``, ``flushes_done``, ``resets_done``,
    ``buffer_empty_count``, ``resets_sent``.
    """

    def __init__(
        self,
        transport: Transport,
        protocol: p.ClientProtocol,
        max_queue: int,
        ping_interval: Optional[float],
        ping_timeout: Optional[float],
        max_frame_bytes: int,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.queue: "queue.Queue[QueueItem]" = queue.Queue(maxsize=max_queue)
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()  # caller threads only: keeps encode order = wire order
        self.changed = threading.Condition(self.lock)  # notified on acks, ready, end
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_frame_bytes = max_frame_bytes
        self.closing = threading.Event()  # set by close(): stop delivering, stop blocking
        self.error: Optional[BaseException] = None
        self.ended = False
        self.request_id: Optional[str] = None
        self.ready = False
        self.flushes_done = 0
        self.resets_done = 0
        self.resets_sent = 0
        self.buffer_empty_count = 0

    def record_error(self, exc: BaseException) -> None:
        """Keep the first error only: later ones are consequences of it."""
        with self.lock:
            if self.error is None:
                self.error = exc
            self.changed.notify_all()


def run_receiver(state: SessionState) -> None:
    """Body of the receiver thread; returns when the connection has ended."""
    try:
        _receive_until_closed(state)
    except BaseException as exc:  # the thread must never die silently
        if not state.closing.is_set():
            state.record_error(exc)
    finally:
        state.transport.close()
        with state.lock:
            state.ended = True
            error = state.error
            state.changed.notify_all()
        if error is not None and not state.closing.is_set():
            _deliver(state, (ERROR, error))
        _deliver_final(state, (END, None))


def _receive_until_closed(state: SessionState) -> None:
    last_heard = time.monotonic()
    ping_sent: Optional[float] = None
    while True:
        wait = _next_keepalive_wait(state, last_heard, ping_sent)
        if not state.transport.wait_readable(wait):
            ping_sent = _keepalive(state, last_heard, ping_sent)
            continue
        frame = state.transport.recv()
        last_heard, ping_sent = time.monotonic(), None
        if _handle_frame(state, frame):
            return


def _next_keepalive_wait(state: SessionState, last_heard: float, ping_sent: Optional[float]) -> Optional[float]:
    if state.ping_interval is None:
        return None
    now = time.monotonic()
    if ping_sent is None:
        return max(last_heard + state.ping_interval - now, 0.0)
    return max(ping_sent + (state.ping_timeout or 0.0) - now, 0.0)


def _keepalive(state: SessionState, last_heard: float, ping_sent: Optional[float]) -> Optional[float]:
    """Send a ping when the line has been quiet; fail when a ping went unanswered."""
    now = time.monotonic()
    if ping_sent is None:
        if now - last_heard >= (state.ping_interval or 0.0):
            state.transport.ping()
            return now
        return None
    if state.ping_timeout is not None and now - ping_sent >= state.ping_timeout:
        raise ConnectionClosedError(
            f"no answer to a keepalive ping within {state.ping_timeout:g} s: the server is unreachable"
        )
    return ping_sent


def _handle_frame(state: SessionState, frame: Any) -> bool:
    """Process one frame; return True when the connection is over."""
    if frame.kind == "pong":
        return False
    if frame.kind in ("text", "binary") and len(frame.data) > state.max_frame_bytes:
        raise ProtocolError(
            f"server sent a {len(frame.data)}-byte {frame.kind} frame, over the {state.max_frame_bytes}-byte limit"
        )
    with state.lock:
        if frame.kind == "text":
            events = state.protocol.receive_text(frame.data)
        elif frame.kind == "binary":
            events = state.protocol.receive_binary(frame.data)
        elif frame.kind == "close":
            events = state.protocol.receive_close(frame.code, frame.reason)
        else:
            events = [p.Violation(f"unexpected websocket frame type {frame.kind!r}")]
    done = False
    for event in events:
        done = _handle_event(state, event) or done
    return done


def _handle_event(state: SessionState, event: p.Event) -> bool:
    """Act on one protocol event; return True when the connection is over."""
    if isinstance(event, p.Audio):
        _deliver_message(state, _audio_message(event))
    elif isinstance(event, p.Timestamps):
        if state.protocol.return_extras:
            _deliver_message(state, {"type": "timestamps", "audio": b"", "timestamps": event.timestamps})
    elif isinstance(event, (p.Ready, p.FlushComplete, p.ResetComplete)):
        _record_ack(state, event)
        if state.protocol.return_extras and not isinstance(event, p.Ready):
            # Timestamps restart at 0.0 after each flush and reset (API 1.2):
            # whoever places words on the audio needs to see where.
            kind = "flush_complete" if isinstance(event, p.FlushComplete) else "reset_complete"
            _deliver_message(state, {"type": kind, "nonce": event.nonce, "audio": b""})
    elif isinstance(event, p.ServerError):
        state.record_error(SessionError(event.message, type=event.type, request_id=event.request_id or state.request_id))
    elif isinstance(event, p.Violation):
        state.record_error(ProtocolError(f"server broke the protocol: {event.summary}"))
        state.transport.send_close(1002, "protocol error")
        return True
    elif isinstance(event, p.Closed):
        _record_close(state, event)
        return True
    return False


def _audio_message(event: p.Audio) -> Dict[str, Any]:
    message: Dict[str, Any] = {"type": "audio", "audio": event.data}
    for key in ("durations", "buffer_empty", "warning"):
        if key in event.extras:
            message[key] = event.extras[key]
    return message


def _record_ack(state: SessionState, event: p.Event) -> None:
    with state.lock:
        if isinstance(event, p.Ready):
            state.ready, state.request_id = True, event.request_id
        elif isinstance(event, p.FlushComplete):
            state.flushes_done = max(state.flushes_done, event.nonce)
        else:
            state.resets_done += 1
        state.changed.notify_all()


def _record_close(state: SessionState, event: p.Closed) -> None:
    if event.normal:
        state.record_error(ConnectionClosedOK("server closed the session normally", event.code, event.reason))
        return
    with state.lock:
        already_failed = state.error is not None
    if not already_failed:  # after a server error frame, any close code is just its consequence
        state.record_error(
            ConnectionClosedError(
                f"server closed the session with code {event.code}" + (f": {event.reason}" if event.reason else ""),
                event.code,
                event.reason,
            )
        )


def _deliver_message(state: SessionState, message: Dict[str, Any]) -> None:
    with state.lock:
        epoch = state.resets_done
        if message.get("buffer_empty") is True:
            state.buffer_empty_count += 1
            state.changed.notify_all()
    _deliver(state, (MESSAGE, epoch, message))


def _deliver(state: SessionState, item: QueueItem) -> None:
    """Queue ``item``, waiting while the queue is full (backpressure on the socket).

    Gives up only when close() has been called: the caller asked to stop.
    """
    while not state.closing.is_set():
        try:
            state.queue.put(item, timeout=_PUT_POLL)
            return
        except queue.Full:
            continue


def _deliver_final(state: SessionState, item: QueueItem) -> None:
    """Queue the end marker; after close(), make room by dropping the oldest item."""
    while True:
        try:
            state.queue.put(item, timeout=_PUT_POLL)
            return
        except queue.Full:
            if state.closing.is_set():
                try:
                    state.queue.get_nowait()
                except queue.Empty:
                    pass


