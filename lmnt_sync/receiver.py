"""Reading a streaming session's socket, and the state the reading shares.

``SessionState`` is everything the caller's threads and the receiver thread
share, guarded by one lock (``state.lock``) that is never held while blocking
on the network, on the inbox, or in user code.

Whoever holds ``state.read_lock`` reads: ``read_step`` reads and handles at
most one frame, turning it into events with the sans-I/O protocol and
queueing messages in the inbox. A caller blocked in ``recv()`` on an empty
inbox takes the lock and reads for itself, so a frame reaches it with no
hop between threads (the floor's latency, not a queue hand-over plus a
wake-up). ``run_receiver``, the background thread, steps aside while a
caller reads and takes over once none has read for ``LINGER`` seconds: it
keeps the connection alive with pings, reads the server's errors and acks
while the caller only sends, and fills the inbox while the caller is busy.

Whoever sees the session end calls ``end_session``: it records the first
error, closes the transport and puts the end marker in the inbox. Nothing
raises into nowhere.

Deliberately, the thread's target is a plain function over ``SessionState``
rather than a method of the public connection object, so an abandoned
connection can still be garbage-collected (and its finalizer close it).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

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
from .inbox import END, ERROR, MESSAGE, Inbox
from .transport import Transport

__all__ = ["SessionState", "ReceiverThread", "read_step", "run_receiver", "end_session", "END", "ERROR", "MESSAGE", "LINGER"]

# How long the receiver thread stays out of the way after a caller last read
# for itself: a caller iterating a stream re-enters recv() within this time,
# so the two threads do not both wake for every frame.
LINGER = 0.05


class SessionState:
    """State shared by the caller's threads and the receiver thread.

    Guarded by ``lock``: ``protocol`` (sends and receives), ``error``,
    ``ended``, ``request_id``, ``ready``, ``flushes_done``, ``resets_done``,
    ``resets_sent``, ``buffer_empty_count``, ``text_unflushed``,
    ``last_flush``, ``finish_sent``, ``callers_reading``, ``caller_left_at``. Touched only by the holder of ``read_lock``:
    ``last_heard``, ``ping_sent`` and the transport's receiving side.
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
        self.inbox = Inbox(max_queue)
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()  # caller threads only: keeps encode order = wire order
        self.read_lock = threading.Lock()  # whoever holds it reads the socket
        self.changed = threading.Condition(self.lock)  # notified on acks, ready, end
        self.reader_wanted = threading.Condition(self.lock)  # wakes a receiver that stepped aside
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
        self.text_unflushed = False  # text sent since the last flush or reset
        self.last_flush = 0  # nonce of the last flush sent
        self.finish_sent = False
        self.callers_reading = 0
        self.caller_left_at = float("-inf")
        self.last_heard = time.monotonic()
        self.ping_sent: Optional[float] = None

    def record_error(self, exc: BaseException) -> None:
        """Keep the first error only: later ones are consequences of it."""
        with self.lock:
            if self.error is None:
                self.error = exc
            self.changed.notify_all()

    def note_sent(self, action: str, nonce: Optional[int]) -> None:
        """Track what the server holds, as each frame is encoded (lock held).

        ``action`` is "text", "flush", "reset" or "finish". A reset moves the
        epoch: audio received before its acknowledgement is stale.
        """
        if action == "text":
            self.text_unflushed = True
        elif action == "flush":
            self.text_unflushed, self.last_flush = False, nonce or 0
        elif action == "reset":
            self.text_unflushed = False
            self.resets_sent += 1
        elif action == "finish":
            self.finish_sent = True

    def resumable(self) -> bool:
        """True if the session ended between turns: a new one would lose and repeat nothing.

        That is: the connection dropped or the server closed it (not an error
        the server reported, a protocol violation, or close() here); on the
        current wire; before finish(); and every text sent had been flushed
        and its ``flush_complete`` received (or reset and acknowledged), so
        the server held no text and all its audio had arrived.
        """
        with self.lock:
            return (
                self.ended
                and not self.closing.is_set()
                and isinstance(self.error, (ConnectionClosed, APIConnectionError, LmntTimeoutError))
                and self.protocol.generation == p.CURRENT
                and not self.finish_sent
                and not self.text_unflushed
                and self.flushes_done >= self.last_flush
                and self.resets_done >= self.resets_sent
            )

    def wake_receiver(self) -> None:
        """Make a receiver that stepped aside look again (closing, ended)."""
        with self.lock:
            self.reader_wanted.notify_all()
            self.changed.notify_all()


def read_step(state: SessionState, wait: Optional[float], out: Optional[List[tuple]] = None) -> None:
    """Read and handle at most one frame; the caller must hold ``state.read_lock``.

    Waits up to ``wait`` seconds (None: until the next keepalive is due) for
    a frame to start; on a quiet line it sends or checks keepalive pings.
    The frame's messages go to the inbox with backpressure (the receiver
    thread), or, given ``out``, are appended to it (a caller reading for
    itself, which only does so when the inbox is empty, takes them from
    there without passing through the inbox). The session's end always goes
    to the inbox.

    Any failure ends the session (``end_session``) and is delivered through
    the inbox. An exception that is not ours (KeyboardInterrupt landing in
    the caller's thread) is re-raised after that, except while only waiting
    for data: then no byte was consumed and the session stays usable.
    """
    if state.ended:
        return
    if not state.transport.wait_readable(_read_wait(state, wait)):
        try:
            _keepalive(state)
        except LmntError as exc:
            end_session(state, exc)
        return
    try:
        frame = state.transport.recv()
        state.last_heard, state.ping_sent = time.monotonic(), None
        if _handle_frame(state, frame, out):
            end_session(state)
    except LmntError as exc:
        end_session(state, exc)
    except BaseException as exc:
        # Part of a frame may have been consumed: the stream cannot be trusted.
        end_session(state, ConnectionClosedError(f"reading the connection was interrupted ({type(exc).__name__})"))
        raise


def run_receiver(state: SessionState) -> None:
    """Body of the receiver thread; returns when the session has ended."""
    try:
        while not state.ended:
            _step_aside(state)
            if state.ended:
                break
            # Wait without the read lock, so a caller can take it meanwhile.
            state.transport.wait_readable(_read_wait(state, None))
            with state.read_lock:
                read_step(state, 0)
    except BaseException as exc:  # the thread must never die silently
        end_session(state, exc)
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
    """Mark the session over: record ``error``, close the transport, queue the end; idempotent."""
    if error is not None and not state.closing.is_set():
        state.record_error(error)  # after close(), errors are consequences of closing
    with state.lock:
        if state.ended:
            return
        state.ended = True
        error = state.error
        state.changed.notify_all()
        state.reader_wanted.notify_all()
    state.transport.close()
    if error is not None and not state.closing.is_set():
        state.inbox.put_now((ERROR, error))
    state.inbox.put_now((END, None))


def _step_aside(state: SessionState) -> None:
    """Block while a caller reads for itself, and ``LINGER`` seconds after it last did."""
    with state.lock:
        while not state.ended and not state.closing.is_set():
            if not state.callers_reading and time.monotonic() - state.caller_left_at >= LINGER:
                return
            state.reader_wanted.wait(LINGER)


def _read_wait(state: SessionState, wait: Optional[float]) -> Optional[float]:
    """``wait``, shortened so the next keepalive check is not missed."""
    keepalive = _next_keepalive_wait(state)
    if keepalive is None:
        return wait
    return keepalive if wait is None else min(wait, keepalive)


def _next_keepalive_wait(state: SessionState) -> Optional[float]:
    if state.ping_interval is None:
        return None
    now = time.monotonic()
    if state.ping_sent is None:
        return max(state.last_heard + state.ping_interval - now, 0.0)
    return max(state.ping_sent + (state.ping_timeout or 0.0) - now, 0.0)


def _keepalive(state: SessionState) -> None:
    """Send a ping when the line has been quiet; fail when a ping went unanswered."""
    if state.ping_interval is None:
        return
    now = time.monotonic()
    if state.ping_sent is None:
        if now - state.last_heard >= state.ping_interval:
            state.transport.ping()
            state.ping_sent = now
        return
    if state.ping_timeout is not None and now - state.ping_sent >= state.ping_timeout:
        raise ConnectionClosedError(
            f"no answer to a keepalive ping within {state.ping_timeout:g} s: the server is unreachable"
        )


def _handle_frame(state: SessionState, frame: Any, out: Optional[List[tuple]]) -> bool:
    """Process one frame; return True when the connection is over."""
    if frame.kind in ("ping", "pong"):  # keepalive either way; the transport answered pings
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
        done = _handle_event(state, event, out) or done
    return done


def _handle_event(state: SessionState, event: p.Event, out: Optional[List[tuple]]) -> bool:
    """Act on one protocol event; return True when the connection is over."""
    if isinstance(event, p.Audio):
        _deliver_message(state, out, _audio_message(event))
    elif isinstance(event, p.Timestamps):
        if state.protocol.return_extras:
            _deliver_message(state, out, {"type": "timestamps", "audio": b"", "timestamps": event.timestamps})
    elif isinstance(event, (p.Ready, p.FlushComplete, p.ResetComplete)):
        _record_ack(state, event)
        if state.protocol.return_extras and not isinstance(event, p.Ready):
            # Timestamps restart at 0.0 after each flush and reset (API 1.2):
            # whoever places words on the audio needs to see where.
            kind = "flush_complete" if isinstance(event, p.FlushComplete) else "reset_complete"
            _deliver_message(state, out, {"type": kind, "nonce": event.nonce, "audio": b""})
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


def _deliver_message(state: SessionState, out: Optional[List[tuple]], message: Dict[str, Any]) -> None:
    with state.lock:
        epoch = state.resets_done
        if message.get("buffer_empty") is True:
            state.buffer_empty_count += 1
            state.changed.notify_all()
    item = (MESSAGE, epoch, message)
    if out is not None:
        out.append(item)
    else:
        state.inbox.put(item, give_up=state.closing.is_set)  # backpressure; close() ends the wait
