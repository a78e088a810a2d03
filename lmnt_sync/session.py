"""StreamingConnection: one blocking speech session over a websocket.

The caller's threads send text and control messages; the receiver thread
(``receiver.py``), the socket's only reader, fills a bounded inbox that the
caller iterates. All methods are safe to call from any thread, and every
blocking call keeps its budget: each wait re-checks whether the session
ended or is being closed, and ``close()`` wakes them all.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from typing import Any, Callable, Iterator, List, Optional, Tuple, TypeVar

from . import protocol as p
from .deadline import Deadline
from .errors import (
    APIConnectionError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LmntError,
    LocalProtocolError,
    SessionError,
)
from .errors import TimeoutError as LmntTimeoutError
from .inbox import CLOSED, ERROR, MESSAGE
from .messages import Message
from .receiver import ReceiverThread, SessionState, end_session

__all__ = ["StreamingConnection"]

logger = logging.getLogger("lmnt_sync.session")
_T = TypeVar("_T")  # what a send hands back: a nonce, or None

# The main thread's waits are cut into slices so Ctrl-C always gets in. On
# POSIX a signal interrupts a lock wait, except one that lands between
# CPython's last signal check and the wait itself: it is then handled when the
# wait ends, so a long slice bounds that rare delay at little cost. On Windows
# a lock wait is never interrupted: short slices. Other threads never slice
# (signals are handled in the main thread only).
_SIGNAL_SLICE = 0.1 if os.name == "nt" else 2.0
# How long a failed send waits for the receiver to read why the session ended
# (the server's error message or close frame, already on its way).
_SEND_FAILURE_GRACE = 1.0
# close() joins the receiver at least this long after shutting the socket
# down, which ends it within microseconds: a zero budget still leaves no thread.
_JOIN_FLOOR = 0.5


class StreamingConnection:
    """A live speech session: send text, iterate audio, both at once.

    Created by ``Speech.synthesize_streaming``; the receiver thread is
    already running when you get it. Iterating yields message dicts whose
    ``"audio"`` is bytes, so ``for m in conn: out.write(m["audio"])`` works
    as in LMNT's guide. With ``return_extras=True`` on the current wire, some
    messages carry no audio (``b""``): ``{"type": "timestamps", ...}`` after
    the audio it describes, and ``{"type": "flush_complete" | "reset_complete",
    "nonce": n}`` where timestamps restart at 0.0. Iteration ends quietly when
    the server closes normally (after ``finish()``) or after ``close()``, and
    raises on an error or an abnormal close.

    Use it as a context manager, or call ``close()``; an abandoned connection
    is shut down when garbage-collected (without blocking the collector).
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
        self.close_timeout = close_timeout
        self.iter_timeout = iter_timeout
        self._closed_locally = False
        self._reopen = reopen
        self._relink_lock = threading.Lock()
        self._backlog: List[SessionState] = []  # sessions lost between turns, not yet iterated to the end
        self._iterators = 0  # live ``for message in connection`` loops
        self.reconnects = 0
        self._attach(state, receiver)

    def _attach(self, state: SessionState, receiver: Optional[ReceiverThread]) -> None:
        """Make ``state`` this connection's session and start receiving for it."""
        receiver = receiver or ReceiverThread()
        self._state, self._thread = state, receiver.thread
        # Served last, once every attribute exists.
        receiver.serve(state)
        self._finalizer = weakref.finalize(self, _abandon, state)

    # -- sending ----------------------------------------------------------

    @property
    def protocol(self) -> str:
        """The wire generation: ``"current"`` or ``"legacy"``."""
        return self._state.protocol.generation

    def append_text(self, text: str) -> None:
        """Send ``text`` to the server's buffer.

        Blocks only while the socket is full, at most ``io_timeout``.

        Raises:
            ConfigurationError: ``text`` is not a str.
            LocalProtocolError: the session was finished or closed.
            TimeoutError: the server took nothing for ``io_timeout``; the
                session is over (part of a frame may be on the wire).
            LmntError: the error that ended the session.
        """
        self._send(lambda proto: (proto.text(text), None))

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
            LocalProtocolError: misuse (after finish, legacy wait without
                extras), or ``wait`` while the turn's audio filled the inbox
                (``max_queue``) and no thread iterates: it could never complete.
            ConnectionClosedOK: ``close()`` was called while waiting.
            LmntError: the session ended before the acknowledgement.
        """
        state = self._state
        if wait and state.protocol.generation == p.LEGACY and not state.protocol.return_extras:
            raise LocalProtocolError("flush(wait=True) on the legacy wire needs return_extras=True")
        deadline = Deadline(timeout)
        with state.lock:
            empties_before = state.protocol.buffer_empty_count
        nonce, state = self._send(lambda proto: proto.flush(), deadline if wait else None, "flush(wait=True)")
        if wait:
            proto = state.protocol
            if nonce is None:
                self._wait_for(state, lambda: proto.buffer_empty_count > empties_before, deadline, "flush(wait=True)")
            else:
                self._wait_for(state, lambda: proto.flushes_done >= nonce, deadline, "flush(wait=True)")
        return nonce

    def reset(self, wait: bool = False, timeout: Optional[float] = 30.0) -> int:
        """Drop the server's buffered text and the audio still queued here for it.

        Audio received before the server confirms the reset is discarded
        (what is queued at once), so the next message iterated is speech of
        text sent after this call.

        Args:
            wait: block until the server's ``reset_complete`` arrives.
            timeout: seconds to wait when ``wait`` is true.

        Returns:
            The reset nonce.

        Raises:
            LocalProtocolError: on the legacy wire (it has no reset), or after finish.
            TimeoutError: ``wait`` and the acknowledgement did not come in time.
            LmntError: as for ``flush``.
        """
        deadline = Deadline(timeout)
        nonce, state = self._send(lambda proto: proto.reset(), deadline if wait else None, "reset(wait=True)")
        with self._relink_lock:
            self._backlog.clear()  # audio of sessions lost earlier is older still
        target = state.protocol.resets_sent
        state.inbox.drop_stale(target)
        if wait:
            self._wait_for(state, lambda: state.protocol.resets_done >= target, deadline, "reset(wait=True)")
        return nonce

    def finish(self) -> None:
        """Tell the server no more text will come; it speaks the rest, then closes.

        Keep iterating to receive the tail: every audio frame the server sends
        before closing reaches the iterator. Raises as ``append_text``.
        """
        self._send(lambda proto: (proto.finish(), None))

    def _send(
        self, make: Callable[[p.ClientProtocol], Tuple[str, _T]], deadline: Optional[Deadline] = None, what: str = ""
    ) -> Tuple[_T, SessionState]:
        """Encode and send one frame; returns (nonce or None, the session it went on).

        With a ``deadline``, waiting for the line (another thread's send, a
        full socket) is bounded by it, and nothing is encoded or sent if it
        passes. With ``reconnect``, a session lost between turns is reopened
        and the frame sent on the new one.
        """
        while True:
            state = self._state
            try:
                return self._send_on(state, make, deadline, what), state
            except _SendFailed as failed:
                if not self._resume(state, failed.between_turns):
                    raise failed.error from failed.error.__cause__
            except LmntTimeoutError:
                raise  # the deadline passed before anything was sent: the session goes on
            except LmntError:
                if not self._resume(state):
                    raise

    def _send_on(
        self,
        state: SessionState,
        make: Callable[[p.ClientProtocol], Tuple[str, _T]],
        deadline: Optional[Deadline],
        what: str,
    ) -> _T:
        """Encode under the state lock and send outside it, both under ``send_lock``.

        ``send_lock`` spans both steps so frames reach the wire in the order
        they were encoded (two threads racing could otherwise put text on
        the wire after a finish encoded before it). The receiver thread
        never waits for it.
        """
        what = f"{what or 'sending'} (another send holds the line, or the server is not reading)"
        if not state.send_lock.acquire(timeout=_lock_timeout(None if deadline is None else deadline.remaining())):
            assert deadline is not None  # without one, the acquire waits as long as it takes
            raise deadline.error(what)
        try:
            if deadline is not None and not state.transport.wait_writable(deadline.remaining()):
                with state.lock:
                    self._raise_if_cannot_send(state)
                raise deadline.error(what)  # the server is not reading; nothing was sent
            # Outside the state lock: a system call. The server is gone and the receiver
            # has not said so yet: whatever is written now is lost, so fail (and maybe
            # resume) before writing.
            closed_by_peer = state.transport.peer_closed()
            with state.lock:
                self._raise_if_cannot_send(state)
                between_turns = state.protocol.between_turns
                if not closed_by_peer:
                    frame, nonce = make(state.protocol)
            failure: LmntError
            if closed_by_peer:
                failure, timed_out = APIConnectionError("the server closed the connection"), False
            else:
                try:
                    state.transport.send_text(frame)
                    return nonce
                except LmntTimeoutError as exc:
                    failure, timed_out = exc, True
                except LmntError as exc:
                    failure, timed_out = exc, False
        finally:
            state.send_lock.release()
        # The send lock is free again: ending the session takes it.
        if timed_out:
            end_session(state, LmntTimeoutError(
                "sending timed out: the server took nothing within io_timeout, and part of the frame "
                "may be on the wire, so the session was closed"
            ))
        else:
            self._await_verdict(state)
            end_session(state, failure)
        error = self._send_refusal(state)
        if timed_out and isinstance(error.__cause__, LmntTimeoutError):
            error = LmntTimeoutError(str(error.__cause__))  # this caller hears of the timeout itself
            error.__cause__ = failure
        raise _SendFailed(error, between_turns)

    def _await_verdict(self, state: SessionState) -> None:
        """After a failed send, give the receiver a moment to read why the session ended.

        The server often closes right after an error message, or had closed
        already: the close frame or error is on its way, and says more than
        "broken pipe". Not while the receiver waits on a full inbox (it
        reads nothing then), and never past ``_SEND_FAILURE_GRACE``.
        """
        deadline = Deadline(_SEND_FAILURE_GRACE)
        with state.changed:
            while not state.ended and not state.closing and not state.inbox.blocked and not deadline.expired():
                state.wait_changed(_signal_slice(deadline.remaining()))

    def _raise_if_cannot_send(self, state: SessionState) -> None:
        """Raise if ``state``'s session takes no more frames (its lock held)."""
        if self._closed_locally or state.closing or state.ended:
            raise self._send_refusal(state)

    def _send_refusal(self, state: SessionState) -> LmntError:
        """A fresh error saying why nothing more can be sent on ``state``."""
        if self._closed_locally or state.closing:
            return LocalProtocolError("the session is closed")
        error = state.error
        if (error is None or isinstance(error, ConnectionClosedOK)) and state.protocol.finish_sent:
            return LocalProtocolError("the session is finished")
        return _fresh_error(error)

    def _wait_for(self, state: SessionState, predicate: Callable[[], bool], deadline: Deadline, what: str) -> None:
        """Block until ``predicate()`` (read under the state lock) or the session can no longer satisfy it.

        Raises:
            ConnectionClosedOK: close() was called meanwhile.
            LmntError: the session ended (chained to why).
            LocalProtocolError: the receiver waits on a full inbox and no thread takes from it.
            TimeoutError: ``deadline`` passed.
        """
        with state.changed:
            while not predicate():
                if self._closed_locally or state.closing:
                    raise ConnectionClosedOK(f"the session was closed before {what} completed", 1000)
                if state.ended:
                    raise _fresh_error(state.error, f"the session ended before {what} completed")
                if state.inbox.blocked and not state.inbox.getters and not self._iterators:
                    raise LocalProtocolError(
                        f"{what} cannot complete: the audio received since filled the inbox "
                        f"(max_queue={state.inbox.bound} messages) and no thread is iterating the session, "
                        "so the acknowledgement behind it cannot be read; iterate in another thread "
                        "while waiting, or open the session with a larger max_queue"
                    )
                if deadline.expired():
                    raise deadline.error(what)
                state.wait_changed(_signal_slice(deadline.remaining()))

    # -- receiving --------------------------------------------------------

    @property
    def request_id(self) -> Optional[str]:
        """The server's request id, once ``ready`` has arrived (current wire)."""
        return self._state.protocol.request_id

    def wait_ready(self, timeout: Optional[float] = 10.0) -> Optional[str]:
        """Block until the server confirms the session; return its request id.

        Raises:
            LocalProtocolError: on the legacy wire, which has no ready message.
            TimeoutError, LmntError: as for ``flush(wait=True)``.
        """
        if self.protocol == p.LEGACY:
            raise LocalProtocolError("the legacy wire has no ready message")
        state = self._state
        self._wait_for(state, lambda: state.protocol.ready, Deadline(timeout), "wait_ready()")
        return state.protocol.request_id

    def recv(self, timeout: Optional[float] = None, *, cancelled: Optional[Callable[[], bool]] = None) -> Message:
        """Return the next message; blocks up to ``timeout`` seconds (None: no limit, 0: poll).

        Only waits on the inbox: the receiver thread does all reading, so a
        poll never touches the network, and a wait costs no wake-ups.

        Args:
            cancelled: for a thread that must give up waiting when something
                else happens (a player being closed): checked when ``wake()``
                is called; once true, ``recv`` raises TimeoutError at once.

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
            message = self._recv_from(state, deadline, cancelled)
            if message is not None:
                return message
            # That session was lost between turns and the connection resumed: go on with the next.
            with self._relink_lock:
                if self._backlog and self._backlog[0] is state:
                    self._backlog.pop(0)

    def _recv_from(
        self, state: SessionState, deadline: Deadline, cancelled: Optional[Callable[[], bool]]
    ) -> Optional[Message]:
        """``recv()`` on one session; None if it ended between turns and the connection resumed."""
        while True:
            if self._closed_locally:
                raise ConnectionClosedOK("the session was closed", 1000)
            if state is not self._state and state not in self._backlog:
                return None  # a reset dropped what that lost session still held
            item = state.inbox.get(deadline.remaining(), _wait_for_token, cancelled)
            if item is None:
                if cancelled is not None and cancelled():
                    raise LmntTimeoutError("recv() was cancelled")
                if deadline.expired():
                    raise deadline.error("recv()")
                continue
            if item[0] == MESSAGE:
                if item[1] >= state.protocol.resets_sent:  # older audio belongs to text a reset dropped
                    return item[2]
                continue
            if item[0] == CLOSED[0]:
                raise ConnectionClosedOK("the session was closed", 1000)
            # Everything this session delivered came before its end marker: nothing is skipped.
            if state is not self._state or self._resume(state):  # not current: resumed already
                return None
            raise _fresh_error(item[1] if item[0] == ERROR else state.error)

    def wait_taken(self, timeout: Optional[float] = None) -> None:
        """Block until every message received so far has been taken by ``recv()``
        (or iteration) in another thread, and that thread waits for the next one.

        For a consumer thread's owner, e.g. ``Player.wait_idle()``: after
        ``flush(wait=True)`` all of a turn's audio has arrived, and after this
        it has also left the session for the consumer. Returns at once once
        the session has ended or is closed. Never sends or reads.

        Raises:
            TimeoutError: not so within ``timeout`` seconds (None: no limit).
        """
        state = self._state
        deadline = Deadline(timeout)
        with state.changed:  # a get() that starts waiting notifies it (the inbox's on_wait)
            while not (state.inbox.taken_locked() or state.ended or state.closing or self._closed_locally):
                if deadline.expired():
                    raise deadline.error("wait_taken()")
                state.wait_changed(_signal_slice(deadline.remaining()))

    def wake(self) -> None:
        """Make threads waiting in ``recv(cancelled=...)`` check their ``cancelled`` now; never blocks long."""
        with self._relink_lock:
            states = [*self._backlog, self._state]
        for state in states:
            state.inbox.wake()

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the session ends (see class docstring)."""
        with self._relink_lock:
            self._iterators += 1
        try:
            while True:
                try:
                    message = self.recv(self.iter_timeout)
                except ConnectionClosedOK:
                    return
                yield message
        finally:
            with self._relink_lock:
                self._iterators -= 1

    # -- reconnecting -----------------------------------------------------

    def _resume(self, ended: SessionState, between_turns: Optional[bool] = None) -> bool:
        """After ``ended`` failed: True if the connection goes on with a new session.

        Only with ``reconnect``, and only if ``ended`` was lost between turns
        (``SessionState.resumable``; ``between_turns`` overrides the protocol's
        view for a frame whose send failed, which never reached the server).
        The first thread to get here reopens; the others find the new
        session in place.

        Raises:
            ConnectionClosedError: reopening failed (chained to why).
        """
        if self._reopen is None:
            return False
        with self._relink_lock:
            if self._state is not ended:
                return True
            if self._closed_locally or not ended.resumable(between_turns):
                return False
            try:
                state, receiver = self._reopen(ended.protocol.nonce)
            except LmntError as exc:
                raise ConnectionClosedError(
                    f"the connection was lost between turns and reopening it failed: {exc}"
                ) from exc
            self._finalizer.detach()
            self._thread.join(self.close_timeout)  # it has ended: its thread returns at once
            self._backlog.append(ended)  # its inbox may still hold audio not iterated yet
            self._attach(state, receiver)
            self.reconnects += 1
        logger.info("session lost between turns (%s); continuing on a new one", ended.error)
        return True

    # -- closing ----------------------------------------------------------

    def close(self, timeout: Optional[float] = None) -> None:
        """Close the connection and join the receiver thread; never raises, idempotent.

        Wakes every thread blocked on this session at once (their calls end
        with ConnectionClosedOK, or LocalProtocolError for sends), sends a
        close frame (1000) if the line is free, waits for the server's answer
        within ``timeout`` (default ``close_timeout``), then shuts the socket
        down. Returns within ``timeout`` whatever the peer does (plus a
        reconnect in progress, bounded by its connect timeout). Queued audio
        not yet iterated is discarded.
        """
        with self._relink_lock:  # a reopening in progress finishes first, and is closed here
            self._closed_locally = True
            state, thread, finalizer = self._state, self._thread, self._finalizer
        _close(state, thread, Deadline(self.close_timeout if timeout is None else timeout))
        finalizer.detach()

    @property
    def closed(self) -> bool:
        """True once the receiver thread has ended."""
        return not self._thread.is_alive()

    def __enter__(self) -> StreamingConnection:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._state.protocol.state.lower()
        return f"<StreamingConnection {self.protocol} {state} request_id={self.request_id!r}>"


class _SendFailed(Exception):
    """Internal: a send failed; ``error`` is for the caller, ``between_turns`` how things stood before it."""

    def __init__(self, error: LmntError, between_turns: bool) -> None:
        super().__init__(error)
        self.error = error
        self.between_turns = between_turns


def _wait_for_token(bell: queue.SimpleQueue[None], remaining: Optional[float]) -> None:
    """One wait for a token of the inbox's doorbell; returns without one once ``remaining`` is up."""
    try:
        bell.get(True, _signal_slice(remaining))
    except queue.Empty:
        pass


def _signal_slice(remaining: Optional[float]) -> Optional[float]:
    """``remaining``, cut to a slice short enough for Ctrl-C in the main thread where the platform needs it."""
    if threading.current_thread() is threading.main_thread():
        return _SIGNAL_SLICE if remaining is None else min(remaining, _SIGNAL_SLICE)
    return remaining


def _close(state: SessionState, thread: threading.Thread, deadline: Deadline) -> None:
    """Close one session within ``deadline``: handshake if the line allows, then shut down and join."""
    with state.lock:
        state.closing = True
        state.inbox.abandon_locked()
        state.notify_changed()
    if not state.ended and thread is not threading.current_thread():  # noqa: SIM102 - the comment is the inner if's
        # A send blocked on a peer that does not read holds the line: then no
        # close frame, the shutdown below ends that send too.
        if state.send_lock.acquire(timeout=_lock_timeout(deadline.remaining())):
            try:
                if state.transport.wait_writable(deadline.remaining()):
                    state.transport.send_close(1000)
            finally:
                state.send_lock.release()
            with state.changed:  # the receiver ends on the server's answering close frame
                while not state.ended and not deadline.expired():
                    state.wait_changed(deadline.remaining())
    end_session(state)  # shuts the socket down: whatever still blocks on it returns now
    if thread is not threading.current_thread():
        remaining = deadline.remaining()
        thread.join(_JOIN_FLOOR if remaining is None else max(remaining, _JOIN_FLOOR))


def _abandon(state: SessionState) -> None:
    """GC finalizer of an unclosed connection: end it without ever blocking the collecting thread.

    The collector may run in any thread, even one holding this session's
    lock (the receiver), so nothing here waits: the socket is shut down
    (the receiver then ends the session and releases it) and waiters are
    woken if the lock is free, else by a short-lived thread.
    """
    if not state.transport.owned:
        return  # a forked child: the connection is its parent's
    state.closing = True
    state.transport.shutdown()
    if state.lock.acquire(blocking=False):
        try:
            state.inbox.abandon_locked()
            state.notify_changed()
        finally:
            state.lock.release()
        return
    try:
        threading.Thread(target=state.inbox.abandon, name="lmnt-sync-closer", daemon=True).start()
    except RuntimeError:  # interpreter shutting down: its daemon threads die with it
        pass


def _lock_timeout(remaining: Optional[float]) -> float:
    """``Lock.acquire``'s timeout for a remaining budget (-1: no limit)."""
    return -1 if remaining is None else remaining


def _fresh_error(cause: Optional[BaseException], context: str = "") -> LmntError:
    """A new exception telling the caller the session is over, chained to the recorded ``cause``.

    A normal end reads as ConnectionClosedOK; the server's own error message
    as SessionError (with its request id); an abnormal close as
    ConnectionClosedError; anything else (a transport failure, a protocol
    violation) as ConnectionClosedError whose ``__cause__`` is that error.
    Fresh each time: re-raising one stored object would grow its traceback
    with every call.
    """
    prefix = f"{context}: " if context else ""
    error: LmntError
    if cause is None:
        error = ConnectionClosedOK(f"{prefix}the session has ended", 1000)
    elif isinstance(cause, SessionError):
        error = SessionError(cause.message, type=cause.type, request_id=cause.request_id)
    elif isinstance(cause, ConnectionClosed):
        error = type(cause)(f"{prefix}{cause}", cause.code, cause.reason)
    else:
        error = ConnectionClosedError(f"{prefix}the connection failed: {cause}")
    error.__cause__ = cause
    return error
