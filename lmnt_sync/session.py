"""StreamingConnection: one blocking speech session over a websocket.

The caller's threads send text and control messages. A thread iterating
reads the socket itself while nothing is queued; otherwise a background
receiver thread (see ``receiver.py``) drains the socket into a bounded inbox
that the caller iterates. All methods are safe to call from any thread.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import protocol as p
from .deadline import Deadline
from .errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LmntError,
    LocalProtocolError,
    SessionError,
)
from .receiver import ERROR, MESSAGE, ReceiverThread, SessionState, read_step

__all__ = ["StreamingConnection"]

logger = logging.getLogger("lmnt_sync.session")

# Longest single wait on a queue or condition: CPython runs signal handlers
# (KeyboardInterrupt) only when the main thread wakes up.
_SIGNAL_POLL = 0.1
# How long a failed send waits for the receiver to record why the session ended.
_SEND_FAILURE_GRACE = 1.0


class StreamingConnection:
    """A live speech session: send text, iterate audio, both at once.

    Created by ``Speech.synthesize_streaming``; the receiver thread is
    already running when you get it. Iterating yields message dicts whose
    ``"audio"`` is bytes, so ``for m in conn: out.write(m["audio"])`` works
    as in LMNT's guide. With ``return_extras=True`` on the current wire, some
    messages carry no audio (``b""``): ``{"type": "timestamps", ...}`` after
    the audio it describes, and ``{"type": "flush_complete" | "reset_complete",
    "nonce": n}`` where timestamps restart at 0.0. Iteration ends quietly when the server closes normally (after
    ``finish()``) or after ``close()``, and raises on an error or an abnormal
    close.

    Use it as a context manager, or call ``close()``; an abandoned connection
    is closed when garbage-collected.
    """

    def __init__(
        self,
        state: SessionState,
        *,
        close_timeout: float,
        iter_timeout: Optional[float],
        receiver: Optional[ReceiverThread] = None,
        reopen: Optional[Callable[[int], Tuple[SessionState, Optional[ReceiverThread]]]] = None,
    ) -> None:
        self._state = state
        self.close_timeout = close_timeout
        self.iter_timeout = iter_timeout
        self._closed_locally = False
        self._reopen = reopen
        self._relink_lock = threading.Lock()
        self._backlog: List[SessionState] = []  # sessions lost between turns, not yet iterated to the end
        self.reconnects = 0
        self._attach(state, receiver)

    def _attach(self, state: SessionState, receiver: Optional[ReceiverThread]) -> None:
        """Make ``state`` this connection's session and start receiving for it."""
        receiver = receiver or ReceiverThread()
        self._state, self._thread = state, receiver.thread
        # Served last, once every attribute exists; finalizer closes an abandoned connection.
        receiver.serve(state)
        self._finalizer = weakref.finalize(self, _shutdown, state, self._thread, self.close_timeout)

    def _resume(self, ended: SessionState) -> bool:
        """After ``ended`` failed: True if the connection goes on with a new session.

        Only with ``reconnect``, and only if ``ended`` was lost between turns
        (see ``SessionState.resumable``): the new session then holds nothing
        the old one had not finished. The first thread to get here reopens;
        the others find the new session in place.

        Raises:
            ConnectionClosedError: reopening failed (chained to why).
        """
        if self._reopen is None or not ended.resumable():
            return False
        with self._relink_lock:
            if self._state is not ended:
                return True
            if self._closed_locally:
                return False
            try:
                state, receiver = self._reopen(ended.protocol.nonce)
            except LmntError as exc:
                raise ConnectionClosedError(f"the connection was lost between turns and reopening it failed: {exc}") from exc
            self._finalizer.detach()
            _shutdown(ended, self._thread, self.close_timeout)  # it has ended: this only joins its thread
            self._backlog.append(ended)  # its inbox may still hold audio not iterated yet
            self._attach(state, receiver)
            self.reconnects += 1
        logger.info("session lost between turns (%s); continuing on a new one", ended.error)
        return True

    # -- sending ----------------------------------------------------------

    @property
    def protocol(self) -> str:
        """The wire generation: ``"current"`` or ``"legacy"``."""
        return self._state.protocol.generation

    def append_text(self, text: str) -> None:
        """Send ``text`` to the server's buffer; blocks only on a full socket.

        Raises:
            ConfigurationError: ``text`` is not a str.
            LocalProtocolError: the session was finished or closed.
            LmntError: the error that ended the session in the receiver thread.
        """
        self._send("text", lambda proto: proto.text(text))

    def flush(self, wait: bool = False, timeout: Optional[float] = 30.0) -> Optional[int]:
        """Ask the server to speak everything buffered now.

        Args:
            wait: block until the server's ``flush_complete`` for this flush
                arrives, i.e. every audio frame of this flush has been
                received (not necessarily iterated yet). On the legacy wire
                this waits for a ``buffer_empty`` extras frame and needs
                ``return_extras=True``.
            timeout: seconds to wait when ``wait`` is true (None: no limit).

        Returns:
            The flush nonce (None on the legacy wire).

        Raises:
            TimeoutError: ``wait`` and the acknowledgement did not come in time.
            LocalProtocolError: misuse (after finish, or legacy wait without extras).
            LmntError: the session ended before the acknowledgement.
        """
        state = self._state
        if wait and state.protocol.generation == p.LEGACY and not state.protocol.return_extras:
            raise LocalProtocolError("flush(wait=True) on the legacy wire needs return_extras=True")
        deadline = Deadline(timeout)
        with state.lock:
            empties_before = state.buffer_empty_count
        nonce, state = self._send("flush", lambda proto: proto.flush())
        if wait:
            if nonce is None:
                self._wait_for(lambda: state.buffer_empty_count > empties_before, deadline, "flush(wait=True)")
            else:
                self._wait_for(lambda: state.flushes_done >= nonce, deadline, "flush(wait=True)")
        return nonce

    def reset(self, wait: bool = False, timeout: Optional[float] = 30.0) -> int:
        """Drop the server's buffered text and the audio still queued here for it.

        Audio received before the server confirms the reset is discarded, so
        the next message iterated is speech of text sent after this call.

        Args:
            wait: block until the server's ``reset_complete`` arrives.
            timeout: seconds to wait when ``wait`` is true.

        Returns:
            The reset nonce.

        Raises:
            LocalProtocolError: on the legacy wire (it has no reset), or after finish.
            TimeoutError: ``wait`` and the acknowledgement did not come in time.
        """
        deadline = Deadline(timeout)
        nonce, state = self._send("reset", lambda proto: proto.reset())
        with self._relink_lock:
            self._backlog.clear()  # audio of sessions lost earlier is older still
        if wait:
            target = state.resets_sent
            self._wait_for(lambda: state.resets_done >= target, deadline, "reset(wait=True)")
        return nonce

    def finish(self) -> None:
        """Tell the server no more text will come; it speaks the rest, then closes.

        Keep iterating to receive the tail: every audio frame the server sends
        before closing reaches the iterator.
        """
        self._send("finish", lambda proto: proto.finish())

    def _send(self, action: str, make: Callable[[p.ClientProtocol], Any]) -> Tuple[Any, SessionState]:
        """Encode under the state lock, send outside it; returns (nonce or None, the session state used).

        ``send_lock`` spans both steps so frames reach the wire in the order
        they were encoded (two threads racing could otherwise put text on the
        wire after a finish encoded before it). The receiver never takes it.
        With ``reconnect``, a session lost between turns is reopened first.
        """
        while True:
            state = self._state
            try:
                with state.send_lock:
                    with state.lock:
                        self._raise_if_ended(state)
                        result = make(state.protocol)
                        frame, nonce = result if isinstance(result, tuple) else (result, None)
                        state.note_sent(action, nonce)
                    try:
                        state.transport.send_text(frame)
                    except LmntError:
                        self._raise_recorded_error(state, _SEND_FAILURE_GRACE)
                        raise
                return nonce, state
            except LmntError:
                if not self._resume(state):
                    raise

    def _raise_recorded_error(self, state: SessionState, grace: float) -> None:
        """After a failed send, raise what ended the session, if the receiver records it within ``grace`` s.

        The server often closes right after an error message; a send racing
        that close fails with a bare connection error, while the receiver is
        about to record the server's own explanation, which is more useful.
        """
        deadline = Deadline(grace)
        with state.changed:
            while not state.ended and not deadline.expired():
                state.changed.wait(deadline.remaining())
            self._raise_if_ended(state)

    def _raise_if_ended(self, state: SessionState) -> None:
        """Raise why ``state``'s session is over, if it is (its lock held)."""
        if self._closed_locally:
            raise LocalProtocolError("the session is closed")
        error = state.error
        if error is None:
            return
        if isinstance(error, ConnectionClosedOK) and state.protocol.state == p.FINISHING:
            raise LocalProtocolError("the session is finished")
        raise _ending_error(error)

    def _wait_for(self, predicate: Callable[[], bool], deadline: Deadline, what: str) -> None:
        state = self._state
        with state.changed:
            while not predicate():
                if state.ended or state.error is not None:
                    self._raise_if_ended(state)
                    raise ConnectionClosedError(f"the session ended before {what} completed")
                if deadline.expired():
                    raise deadline.error(what)
                state.changed.wait(_signal_friendly(deadline.remaining()))

    # -- receiving --------------------------------------------------------

    @property
    def request_id(self) -> Optional[str]:
        """The server's request id, once ``ready`` has arrived (current wire)."""
        return self._state.request_id

    def wait_ready(self, timeout: Optional[float] = 10.0) -> Optional[str]:
        """Block until the server confirms the session; return its request id.

        Raises:
            LocalProtocolError: on the legacy wire, which has no ready message.
            TimeoutError, LmntError: as for ``flush(wait=True)``.
        """
        if self.protocol == p.LEGACY:
            raise LocalProtocolError("the legacy wire has no ready message")
        self._wait_for(lambda: self._state.ready, Deadline(timeout), "wait_ready()")
        return self._state.request_id

    def recv(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Return the next message; blocks up to ``timeout`` seconds (None: no limit).

        When nothing is queued, the calling thread reads the socket itself
        (unless another thread already is), so a frame needs no hand-over
        between threads.

        Raises:
            ConnectionClosedOK: the session ended normally or was closed here.
            SessionError: the server reported an error (with its request id).
            ConnectionClosedError: the connection ended abnormally.
            TimeoutError: nothing arrived in time.
        """
        deadline = Deadline(timeout)
        while True:
            backlog = self._backlog
            state = backlog[0] if backlog else self._state
            with state.lock:  # while callers read for themselves, the receiver thread stays out of the way
                state.callers_reading += 1
            try:
                message = self._recv_from(state, deadline)
            finally:
                with state.lock:
                    state.callers_reading -= 1
                    state.caller_left_at = time.monotonic()
            if message is not None:
                return message
            # That session was lost between turns and the connection resumed: go on with the next.
            with self._relink_lock:
                if self._backlog and self._backlog[0] is state:
                    self._backlog.pop(0)

    def _recv_from(self, state: SessionState, deadline: Deadline) -> Optional[Dict[str, Any]]:
        """``recv()`` on one session; None if it ended between turns and the connection resumed."""
        while True:
            if self._closed_locally:
                raise ConnectionClosedOK("the session was closed", 1000)
            if state is not self._state and state not in self._backlog:
                return None  # a reset dropped what that lost session still held
            item = state.inbox.get(0)
            if item is None:
                # Even with no time left, look at the socket once: a caller polling
                # with timeout=0 keeps the receiver thread aside, so it must read too.
                item = self._read_or_wait(state, _signal_friendly(deadline.remaining()))
                if item is None:
                    if deadline.expired():
                        raise deadline.error("recv()")
                    continue
            kind = item[0]
            if kind == MESSAGE:
                if item[1] >= state.resets_sent:  # older audio belongs to text a reset dropped
                    return item[2]
                continue
            # Everything this session delivered came before its end marker: nothing is skipped.
            if state is not self._state or self._resume(state):  # not current: resumed already
                return None
            raise _ending_error(item[1] if kind == ERROR else state.error)

    def _read_or_wait(self, state: SessionState, wait: float) -> Optional[Any]:
        """Read one frame in this thread, unless another thread is reading; then wait for it.

        Returns the next item, or None if none came within ``wait`` seconds.
        """
        if state.ended:
            return state.inbox.get(wait)  # the end marker is on its way
        if not state.read_lock.acquire(timeout=wait):
            return None
        out: List[Any] = []
        try:
            if state.inbox.empty():  # else the reader before us delivered something
                try:
                    read_step(state, wait, out)
                except BaseException:  # e.g. Ctrl-C: keep what was read for the next call
                    state.inbox.put_front(out)
                    raise
            # The first message goes straight to this caller; any others ahead
            # of the end marker, in case this frame ended the session.
            if len(out) > 1:
                state.inbox.put_front(out[1:])
        finally:
            state.read_lock.release()
        return out[0] if out else state.inbox.get(0)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        """Yield messages until the session ends (see class docstring)."""
        while True:
            try:
                yield self.recv(self.iter_timeout)
            except ConnectionClosedOK:
                return

    # -- closing ----------------------------------------------------------

    def close(self, timeout: Optional[float] = None) -> None:
        """Close the connection and join the receiver thread.

        Idempotent and thread-safe; never raises "already closed". Sends a
        close frame (1000), waits for the server's answer up to ``timeout``
        (default ``close_timeout``), then drops the socket. Blocks at most
        about that long (plus a reconnect in progress, bounded by its
        connect timeout). Queued audio not yet iterated is discarded.
        """
        with self._relink_lock:  # a reopening in progress finishes first, and is closed here
            self._closed_locally = True
            state, thread, finalizer = self._state, self._thread, self._finalizer
        _shutdown(state, thread, self.close_timeout if timeout is None else timeout)
        finalizer.detach()

    @property
    def closed(self) -> bool:
        """True once the receiver thread has ended."""
        return not self._thread.is_alive()

    def __enter__(self) -> "StreamingConnection":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._state.protocol.state.lower()
        return f"<StreamingConnection {self.protocol} {state} request_id={self.request_id!r}>"


def _signal_friendly(remaining: Optional[float]) -> float:
    """Cap one wait so Ctrl-C is handled promptly even when the signal lands on another thread."""
    return _SIGNAL_POLL if remaining is None else min(remaining, _SIGNAL_POLL)



def _shutdown(state: SessionState, thread: threading.Thread, timeout: float) -> None:
    """Close a session's connection and join its receiver (also the GC finalizer)."""
    state.closing.set()
    state.wake_receiver()
    if thread.is_alive():
        state.transport.send_close(1000)
        thread.join(timeout)
    if thread.is_alive():
        state.transport.abort()
        thread.join(max(timeout, 1.0))
    state.transport.close()
    with state.lock:
        state.changed.notify_all()


def _ending_error(error: Optional[BaseException]) -> LmntError:
    """Return what the caller sees once the session is over.

    A normal end reads as ConnectionClosedOK; the server's own error message
    as SessionError (with its request id); anything else as
    ConnectionClosedError chained to the recorded cause.
    """
    if error is None:
        return ConnectionClosedOK("the session has ended", 1000)
    if isinstance(error, (ConnectionClosed, SessionError)):
        return error
    closed = ConnectionClosedError(f"the connection failed: {error}")
    closed.__cause__ = error
    return closed
