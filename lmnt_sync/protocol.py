"""Sans-I/O client side of LMNT's streaming websocket, for both wire generations.

``ClientProtocol`` turns the caller's actions into the exact text frames the
official SDKs send (lmnt 2.x for ``current``, lmnt 1.1.x for ``legacy``) and
turns the server's frames into events. It does no I/O, takes no locks and
reads no clock; the session wraps it with a socket, a thread and a lock.

Bad input from the server never raises here: it becomes a ``Violation``
event and moves the protocol to FAILED, so the receiver thread can record it.

Rules, as one table (``_SEND_RULES``):

* OPEN accepts text, flush, reset and finish; finish moves it to FINISHING.
* FINISHING, CLOSED and FAILED accept nothing more from the caller.
* ``reset`` exists on the current wire only (legacy has no such message).
* Any close or violation moves to CLOSED or FAILED, from any state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union, cast

from . import spec
from .errors import ConfigurationError, LocalProtocolError
from .messages import WordTiming

__all__ = [
    "CURRENT",
    "LEGACY",
    "API_VERSION",
    "SESSION_FORMATS",
    "LEGACY_FORMATS",
    "SAMPLE_RATES",
    "Ready",
    "Audio",
    "Timestamps",
    "FlushComplete",
    "ResetComplete",
    "ServerError",
    "Closed",
    "Violation",
    "Event",
    "ClientProtocol",
]

CURRENT, LEGACY = spec.CURRENT, spec.LEGACY
API_VERSION = spec.API_VERSION
SESSION_FORMATS, LEGACY_FORMATS = spec.SESSION_FORMATS, spec.LEGACY_FORMATS
SAMPLE_RATES = spec.SAMPLE_RATES
NORMAL_CLOSE = spec.NORMAL_CLOSE

OPEN, FINISHING, CLOSED, FAILED = "OPEN", "FINISHING", "CLOSED", "FAILED"

_SEND_RULES = {
    (OPEN, "text"): OPEN,
    (OPEN, "flush"): OPEN,
    (OPEN, "reset"): OPEN,
    (OPEN, "finish"): FINISHING,
}


@dataclass(frozen=True)
class Ready:
    """The server accepted the session (current wire only)."""

    request_id: Optional[str]


@dataclass(frozen=True)
class Audio:
    """One binary audio frame, with the legacy extras that preceded it, if any."""

    data: bytes
    extras: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timestamps:
    """Word timings for the audio frame just before (current wire)."""

    timestamps: List[WordTiming]


@dataclass(frozen=True)
class FlushComplete:
    """All audio for the flush with this nonce has been sent."""

    nonce: int


@dataclass(frozen=True)
class ResetComplete:
    """The server dropped its buffer for the reset with this nonce."""

    nonce: int


@dataclass(frozen=True)
class ServerError:
    """The server reported an error; it closes the connection next."""

    type: Optional[str]
    message: str
    request_id: Optional[str] = None


@dataclass(frozen=True)
class Closed:
    """The server's close frame (``code`` None: the connection dropped without one)."""

    code: Optional[int]
    reason: str = ""

    @property
    def normal(self) -> bool:
        return self.code == NORMAL_CLOSE


@dataclass(frozen=True)
class Violation:
    """The server broke the protocol; ``summary`` names what it sent."""

    summary: str


Event = Union[Ready, Audio, Timestamps, FlushComplete, ResetComplete, ServerError, Closed, Violation]


def summarize(data: Union[str, bytes], limit: int = 120) -> str:
    """Return a short printable excerpt of a frame for error messages."""
    if isinstance(data, bytes):
        return f"<{len(data)} bytes binary>"
    text = data if len(data) <= limit else data[:limit] + f"... ({len(data)} chars)"
    return repr(text)


class ClientProtocol:
    """The client's half of one streaming session, and its bookkeeping.

    Args:
        generation: ``"current"`` (typed messages, API 1.2) or ``"legacy"``.
        return_extras: whether word timings were requested; on the legacy
            wire this decides whether a JSON frame precedes each audio frame.
        first_nonce: nonces continue after this one (a session reopened
            after a loss keeps counting where the lost one stopped).

    Besides encoding and decoding, it keeps what the session needs to know
    about the conversation, updated as frames are encoded and decoded:
    ``ready`` and ``request_id``; ``flushes_done`` (highest acknowledged
    flush nonce) and ``last_flush``; ``resets_sent`` and ``resets_done``
    (a reset moves the epoch: audio decoded before its acknowledgement
    belongs to dropped text); ``buffer_empty_count`` (legacy acks);
    ``text_unflushed``; and ``between_turns``.
    """

    def __init__(self, generation: str = CURRENT, return_extras: bool = False, first_nonce: int = 0) -> None:
        if generation not in (CURRENT, LEGACY):
            raise ConfigurationError(f"protocol must be 'current' or 'legacy', not {generation!r}")
        self.generation = generation
        self.return_extras = bool(return_extras)
        self.state = OPEN
        self.nonce = first_nonce
        self.ready = False
        self.request_id: Optional[str] = None
        self.flushes_done = first_nonce
        self.last_flush = first_nonce
        self.resets_sent = 0
        self.resets_done = 0
        self.buffer_empty_count = 0
        self.text_unflushed = False
        self.finish_sent = False  # the session then only drains
        self._pending_extras: Optional[Dict[str, Any]] = None

    @property
    def between_turns(self) -> bool:
        """True if the server holds no text of ours and owes us no audio.

        Current wire only; before finish; every text sent was flushed and
        its ``flush_complete`` received (or reset, and the reset
        acknowledged). A connection lost now can be replaced by a new
        session without losing or repeating anything.
        """
        return (
            self.generation == CURRENT
            and not self.finish_sent
            and not self.text_unflushed
            and self.flushes_done >= self.last_flush
            and self.resets_done >= self.resets_sent
        )

    # -- caller -> server -------------------------------------------------

    def init_message(self, api_key: str, voice: str, options: Dict[str, Any]) -> str:
        """Return the first frame, with the fields and order the official SDK uses.

        ``options`` holds format, sample_rate, language and (legacy) speed,
        expressive, conversational; None values are left out as the SDKs do.
        """
        if self.generation == CURRENT:
            msg: Dict[str, Any] = {spec.KEY_FIELD: api_key, "lmnt-version": API_VERSION, "voice": voice}
            for key in ("format", "language"):
                _put(msg, key, options.get(key))
            _put(msg, "return_timestamps", True if self.return_extras else None)
            _put(msg, "sample_rate", options.get("sample_rate"))
        else:
            msg = {spec.KEY_FIELD: api_key, "voice": voice}
            for key in ("format", "sample_rate", "speed", "expressive"):
                _put(msg, key, options.get(key))
            msg["send_extras"] = self.return_extras
            for key in ("language", "conversational"):
                _put(msg, key, options.get(key))
        return json.dumps(msg)

    def text(self, text: str) -> str:
        """Return the frame that appends ``text``."""
        if not isinstance(text, str):
            raise ConfigurationError(f"text must be str, not {type(text).__name__}")
        self._advance("text", "send text on")
        self.text_unflushed = True
        if self.generation == CURRENT:
            return json.dumps({"type": spec.MSG_TEXT, "text": text})
        return json.dumps({"text": text})

    def flush(self) -> Tuple[str, Optional[int]]:
        """Return the flush frame and its nonce (None on the legacy wire)."""
        self._advance("flush")
        self.text_unflushed = False
        if self.generation == LEGACY:
            return '{"flush": true}', None
        self.nonce += 1
        self.last_flush = self.nonce
        return json.dumps({"type": spec.MSG_FLUSH, "nonce": self.nonce}), self.nonce

    def reset(self) -> Tuple[str, int]:
        """Return the reset frame and its nonce.

        Raises:
            LocalProtocolError: on the legacy wire, which has no reset.
        """
        if self.generation == LEGACY:
            raise LocalProtocolError("reset() needs the current protocol; the legacy wire has no reset")
        self._advance("reset")
        self.nonce += 1
        self.text_unflushed = False
        self.resets_sent += 1
        return json.dumps({"type": spec.MSG_RESET, "nonce": self.nonce}), self.nonce

    def finish(self) -> str:
        """Return the frame that says no more text will come."""
        self._advance("finish")
        self.finish_sent = True
        if self.generation == LEGACY:
            return '{"eof": true}'
        return json.dumps({"type": spec.MSG_FINISH})

    def _advance(self, action: str, wording: Optional[str] = None) -> None:
        new_state = _SEND_RULES.get((self.state, action))
        if new_state is None:
            raise LocalProtocolError(f"cannot {wording or action} a session that is {_STATE_WORDS[self.state]}")
        self.state = new_state

    # -- server -> caller -------------------------------------------------

    def receive_text(self, data: str) -> List[Event]:
        """Decode one text frame from the server into events."""
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's limit
            return self._fail(f"invalid JSON {summarize(data)}")
        if not isinstance(msg, dict):
            return self._fail(f"a JSON {type(msg).__name__} where an object belongs: {summarize(data)}")
        if self.generation == CURRENT:
            return self._receive_typed(msg, data)
        return self._receive_legacy(msg, data)

    def receive_binary(self, data: bytes) -> List[Event]:
        """Decode one binary (audio) frame from the server into events."""
        if self.generation == CURRENT:
            if not self.ready:
                return self._fail(f"audio before 'ready' ({summarize(data)})")
            return [Audio(data)]
        if self.return_extras:
            if self._pending_extras is None:
                return self._fail(f"audio without its extras frame ({summarize(data)})")
            extras, self._pending_extras = self._pending_extras, None
            if extras.get("buffer_empty") is True:
                self.buffer_empty_count += 1
            return [Audio(data, extras)]
        return [Audio(data)]

    def receive_close(self, code: Optional[int], reason: str = "") -> List[Event]:
        """Record the end of the connection (``code`` None: no close frame)."""
        if self.state != FAILED:
            self.state = CLOSED
        return [Closed(code, reason)]

    def _receive_typed(self, msg: Dict[str, Any], raw: str) -> List[Event]:
        kind = msg.get("type")
        if kind == spec.MSG_ERROR:
            return [self._error_event(msg.get("error"), msg.get("request_id"), raw)]
        if kind == spec.MSG_READY:
            request_id = msg.get("request_id")
            if request_id is not None and not isinstance(request_id, str):
                return self._fail(f"'ready' with a non-string request_id: {summarize(raw)}")
            self.ready, self.request_id = True, request_id
            return [Ready(request_id)]
        if not self.ready:
            return self._fail(f"{summarize(raw)} before 'ready'")
        if kind == spec.MSG_TIMESTAMPS:
            stamps = msg.get("timestamps")
            if not _is_timings(stamps):
                return self._fail(f"malformed timestamps {summarize(raw)}")
            return [Timestamps(cast(List[WordTiming], stamps))]  # checked just above
        if kind in (spec.MSG_FLUSH_COMPLETE, spec.MSG_RESET_COMPLETE):
            nonce = msg.get("nonce")
            if not isinstance(nonce, int) or isinstance(nonce, bool):
                return self._fail(f"{kind} without an integer nonce: {summarize(raw)}")
            if kind == spec.MSG_FLUSH_COMPLETE:
                self.flushes_done = max(self.flushes_done, nonce)
                return [FlushComplete(nonce)]
            self.resets_done += 1
            return [ResetComplete(nonce)]
        return self._fail(f"unknown message type {summarize(str(kind), 40)}: {summarize(raw)}")

    def _receive_legacy(self, msg: Dict[str, Any], raw: str) -> List[Event]:
        if "error" in msg:
            return [self._error_event(msg["error"], msg.get("request_id"), raw)]
        if not self.return_extras:
            return self._fail(f"a text frame without extras requested: {summarize(raw)}")
        if not _is_timings(msg.get("durations", [])):
            return self._fail(f"malformed durations {summarize(raw)}")
        if self._pending_extras is not None:
            return self._fail(f"two extras frames in a row: {summarize(raw)}")
        self._pending_extras = msg
        return []

    def _error_event(self, error: Any, request_id: Any, raw: str) -> Event:
        request_id = request_id if isinstance(request_id, str) else None
        if isinstance(error, str):
            return ServerError(None, error, request_id)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = error.get("type")
            return ServerError(kind if isinstance(kind, str) else None, error["message"], request_id)
        return self._fail(f"malformed error message {summarize(raw)}")[0]

    def _fail(self, summary: str) -> List[Event]:
        self.state = FAILED
        return [Violation(summary)]


_STATE_WORDS = {OPEN: "open", FINISHING: "finishing (finish() was called)", CLOSED: "closed", FAILED: "failed"}


def _put(msg: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        msg[key] = value


def _is_timings(value: Any) -> bool:
    """Return True if ``value`` is a list of {text, start, duration} entries."""
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return False
        for key in ("start", "duration"):
            number = item.get(key)
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                return False
    return True
