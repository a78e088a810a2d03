"""The receiver thread: the one reader of a session's socket, and the state it shares.

``SessionState`` is everything the caller's threads and the receiver thread
share, guarded by one lock (``state.lock``) that is never held while
blocking on the network or in user code. The conversation's bookkeeping
(ready, nonces, acknowledgements, "between turns") lives in the sans-I/O
``ClientProtocol`` it holds.

``run_receiver`` is the only code that reads the socket. It sleeps in
``poll`` until a frame starts or the next keepalive is due (nothing polls
on a clock), turns each frame into events with the protocol, and puts
messages into the bounded inbox, waiting there while it is full (TCP then
pushes back on the server). Whoever sees the session end calls
``end_session``: it records the first error, shuts the connection down and
queues the end marker. Nothing raises into nowhere.

Deliberately, the thread's target is a plain function over ``SessionState``
rather than a method of the public connection object, so an abandoned
connection can still be garbage-collected (and its finalizer close it).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, Tuple, cast

from . import protocol as p
from .errors import (
    APIConnectionError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LmntError,
    ProtocolError,
    SessionError,
)
from .errors import TimeoutError as LmntTimeoutError
from .inbox import END, ERROR, MESSAGE, Inbox, Item
from .messages import AudioMessage, FlushCompleteMessage, Message, ResetCompleteMessage, TimestampsMessage
from .transport import Transport

__all__ = ["SessionState", "ReceiverThread", "run_receiver", "end_session", "END", "ERROR", "MESSAGE"]


class SessionState:
    """State shared by the caller's threads and the receiver thread.

    Guarded by ``lock``: ``protocol`` (encoding and decoding), ``error``,
    ``ended``, ``closing``, ``iterators`` and the inbox. ``send_lock``
    (caller threads, and the receiver's keepalive when it is free) keeps
    encode order equal to wire order. Touched by the receiver only:
    ``last_heard``, ``ping_sent``.
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
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # acks, ready, end, closing, inbox blocked
        self.watchers = 0  # threads waiting on ``changed`` (see wait_changed)
        self.inbox = Inbox(max_queue, self.lock, self.notify_changed)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_frame_bytes = max_frame_bytes
        self.closing = False  # close() was called: stop delivering, stop blocking
        self.error: Optional[BaseException] = None  # the first cause of the end, never raised itself
        self.ended = False
        self.iterators = 0  # live ``for message in connection`` loops
        self.last_heard = time.monotonic()
        self.ping_sent: Optional[float] = None

    def wait_changed(self, timeout: Optional[float]) -> None:
        """Wait (lock held) until ``changed`` is notified or ``timeout`` passes; spurious wake-ups are possible."""
        self.watchers += 1
        try:
            self.changed.wait(timeout)
        finally:
            self.watchers -= 1

    def wait_for(self, predicate: Callable[[], bool], timeout: Optional[float]) -> bool:
        """Wait (lock held) until ``predicate()``, at most ``timeout`` s (None: no limit); return its last value."""
        end = None if timeout is None else time.monotonic() + timeout
        while not predicate():
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self.wait_changed(remaining)
        return True

    def notify_changed(self) -> None:
        """Wake every ``wait_changed`` (lock held).

        Skipped when nobody waits: the receiver calls it for every frame,
        and most frames (audio) arrive while nobody does.
        """
        if self.watchers:
            self.changed.notify_all()

    def resumable(self, between_turns: Optional[bool] = None) -> bool:
        """True if the session was lost between turns: a new one would lose and repeat nothing.

        That is: the connection dropped or the server closed it (not an
        error the server reported, a protocol violation, or close() here),
        and the protocol was between turns (``ClientProtocol.between_turns``,
        unless ``between_turns`` says how it stood before a frame whose
        send failed).
        """
        with self.lock:
            return (
                self.ended
                and not self.closing
                and isinstance(self.error, (ConnectionClosed, APIConnectionError, LmntTimeoutError))
                and (self.protocol.between_turns if between_turns is None else between_turns)
            )


def run_receiver(state: SessionState) -> None:
    """Body of the receiver thread; returns when the session has ended."""
    try:
        while not state.ended:
            if not state.transport.wait_readable(_keepalive_wait(state)):
                _keepalive(state)
                continue
            frame = state.transport.recv()
            state.last_heard, state.ping_sent = time.monotonic(), None
            if _handle_frame(state, frame):
                break
    except LmntError as exc:
        end_session(state, exc)
    except BaseException as exc:  # the thread must never die silently
        end_session(state, ConnectionClosedError(f"the receiver thread failed: {type(exc).__name__}: {exc}"))
    finally:
        end_session(state)


class ReceiverThread:
    """The receiver thread, started before its session exists.

    ``Thread.start()`` blocks until the new thread runs (100 us or more on a
    busy machine); a thread started ahead of time, e.g. next to a connection
    opened in advance, lets a session begin without that wait. ``serve``
    gives the thread its session; ``release`` ends a thread never used.
    """

    def __init__(self) -> None:
        self._state: Optional[SessionState] = None
        self._assigned = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lmnt-sync-receiver", daemon=True)
        self.thread.start()

    def serve(self, state: SessionState) -> None:
        """Start receiving for ``state``; returns at once."""
        self._state = state
        self._assigned.set()

    def release(self) -> None:
        """End the thread without a session (no-op once serving); does not wait."""
        self._assigned.set()

    def _run(self) -> None:
        self._assigned.wait()
        state, self._state = self._state, None  # hold the session only through run_receiver
        if state is not None:
            run_receiver(state)


def end_session(state: SessionState, error: Optional[BaseException] = None) -> None:
    """Mark the session over: record ``error``, shut the connection, queue the end; idempotent.

    Never blocks for long: the shutdown wakes any thread blocked sending,
    so the send lock (taken to release the socket) is free at once.
    """
    with state.lock:
        if error is not None:
            _keep_first(state, error)
        if state.ended:
            return
        state.ended = True
        error, closing = state.error, state.closing
        state.notify_changed()
    state.transport.shutdown()
    with state.send_lock:  # a sender woken by the shutdown is out of the socket before it goes
        state.transport.close()
    items: Tuple[Item, ...] = ((ERROR, error), (END, None)) if error is not None and not closing else ((END, None),)
    state.inbox.end(items)


def _keepalive_wait(state: SessionState) -> Optional[float]:
    """Seconds until the next keepalive check (None: never)."""
    if state.ping_interval is None:
        return None
    now = time.monotonic()
    if state.ping_sent is None:
        return max(state.last_heard + state.ping_interval - now, 0.0)
    if state.ping_timeout is None:
        return None  # a ping is out; with no deadline, only frames wake us
    return max(state.ping_sent + state.ping_timeout - now, 0.0)


def _keepalive(state: SessionState) -> None:
    """Send a ping when the line has been quiet; fail when a ping went unanswered.

    While a caller's send holds the line, that send is the liveness test
    (it fails after ``io_timeout``): the ping waits one more interval
    rather than queue behind it, which would stop the reading.
    """
    if state.ping_interval is None:
        return
    now = time.monotonic()
    if state.ping_sent is None:
        if now - state.last_heard < state.ping_interval:
            return
        if not state.send_lock.acquire(blocking=False):
            state.last_heard = now
            return
        try:
            state.transport.ping()
        finally:
            state.send_lock.release()
        state.ping_sent = now
        return
    if state.ping_timeout is not None and now - state.ping_sent >= state.ping_timeout:
        raise ConnectionClosedError(
            f"no answer to a keepalive ping within {state.ping_timeout:g} s: the server is unreachable"
        )


def _handle_frame(state: SessionState, frame: Any) -> bool:
    """Process one frame; return True when the connection is over."""
    kind = frame.kind
    if kind == "ping" or kind == "pong":  # keepalive either way; the transport answered pings
        return False
    if (kind == "binary" or kind == "text") and len(frame.data) > state.max_frame_bytes:
        raise ProtocolError(
            f"server sent a {len(frame.data)}-byte {kind} frame, over the {state.max_frame_bytes}-byte limit"
        )
    ring = False
    with state.lock:
        protocol = state.protocol
        if kind == "binary":
            events = protocol.receive_binary(frame.data)
        elif kind == "text":
            events = protocol.receive_text(frame.data)
        else:
            events = protocol.receive_close(frame.code, frame.reason)
        state.notify_changed()  # acknowledgements and ready are in the protocol now
        epoch = protocol.resets_done
        # Messages for the caller are queued in the same critical section
        # (one lock round per frame: this is the per-frame path); the
        # other events are handled after it, as they may send.
        others = []
        for event in events:
            message = _message_of(event, protocol.return_extras)
            if message is None:
                others.append(event)
            elif message is not _NOTHING:
                ring = state.inbox.put_locked((MESSAGE, epoch, message)) or ring
    if ring:
        state.inbox.ring()
    over = False
    for event in others:
        over = _handle_event(state, event) or over
    return over


#: What ``_message_of`` returns for an event the caller did not ask to see.
_NOTHING: Message = cast(Message, object())


def _message_of(event: p.Event, extras: bool) -> Optional[Message]:
    """The message ``event`` gives the caller, ``_NOTHING`` if none, None if it is not about messages."""
    if type(event) is p.Audio:
        return _audio_message(event)
    if isinstance(event, p.Ready):
        return _NOTHING  # wait_ready() reads it from the protocol
    if isinstance(event, p.Timestamps):
        return TimestampsMessage(type="timestamps", audio=b"", timestamps=event.timestamps) if extras else _NOTHING
    if isinstance(event, p.FlushComplete):
        # Timestamps restart at 0.0 after each flush and reset (API 1.2):
        # whoever places words on the audio needs to see where.
        return FlushCompleteMessage(type="flush_complete", nonce=event.nonce, audio=b"") if extras else _NOTHING
    if isinstance(event, p.ResetComplete):
        return ResetCompleteMessage(type="reset_complete", nonce=event.nonce, audio=b"") if extras else _NOTHING
    return None


def _handle_event(state: SessionState, event: p.Event) -> bool:
    """Act on a protocol event that is not a message; return True when the connection is over."""
    if isinstance(event, p.ServerError):
        request_id = event.request_id or state.protocol.request_id
        _record(state, SessionError(event.message, type=event.type, request_id=request_id))
    elif isinstance(event, p.Violation):
        _record(state, ProtocolError(f"server broke the protocol: {event.summary}"))
        if state.send_lock.acquire(blocking=False):  # tell the server why, unless a send holds the line
            try:
                state.transport.send_close(1002, "protocol error")
            finally:
                state.send_lock.release()
        return True
    elif isinstance(event, p.Closed):
        _record_close(state, event)
        return True
    return False


def _audio_message(event: p.Audio) -> AudioMessage:
    message = AudioMessage(type="audio", audio=event.data)
    extras = event.extras  # the protocol checked durations; the others are passed on as sent
    if "durations" in extras:
        message["durations"] = extras["durations"]
    if "buffer_empty" in extras:
        message["buffer_empty"] = extras["buffer_empty"]
    if "warning" in extras:
        message["warning"] = extras["warning"]
    return message


def _record(state: SessionState, error: BaseException) -> None:
    """Record ``error`` as why the session ends, unless an earlier error already is."""
    with state.lock:
        _keep_first(state, error)
        state.notify_changed()


def _keep_first(state: SessionState, error: BaseException) -> None:
    """Keep the first error only (lock held): later ones are its consequences; after close(), all are."""
    if state.error is None and not state.closing:
        state.error = error


def _record_close(state: SessionState, event: p.Closed) -> None:
    if event.normal:
        _record(state, ConnectionClosedOK("server closed the session normally", event.code, event.reason))
        return
    # After a server error frame, any close code is just its consequence (_record keeps the first).
    _record(
        state,
        ConnectionClosedError(
            f"server closed the session with code {event.code}" + (f": {event.reason}" if event.reason else ""),
            event.code,
            event.reason,
        ),
    )
