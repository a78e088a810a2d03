"""Server side of LMNT's streaming websocket, sans I/O: parse and encode.

Three protocol generations share ``/v1/ai/speech/stream`` (PROTOCOL.md §1).
They are told apart by the first (init) message:

* **current** (API 1.1 / 1.2): ``lmnt-version`` ≥ 1.1 or a ``type`` key
  (``"type": "init"``; a typed message sent too early also reads as current);
* **command/ack** (transitional): ``"protocol_version": 2``;
* **legacy**: anything else (including ``"lmnt-version": "1.0"``).

Later client messages are routed by their *shape* rather than by the session's
generation (``type`` key ⇒ typed, ``command`` key ⇒ command/ack, otherwise
legacy ``text``/``flush``/``eof`` keys), so a client mixing styles still works;
acknowledgements follow the shape of the command they answer.

Decisions on PROTOCOL.md §5's open questions (this module and
:mod:`.stream` implement them):

* Session defaults: ``format`` mp3, ``sample_rate`` 24000 (8000 for ulaw),
  ``language`` ``auto`` (legacy ``en``). Any language is accepted; the local
  engines speak English only and ignore it. ``speed``, ``conversational``,
  ``expressive`` and ``model`` are accepted and ignored.
* ``finish`` (and legacy/command ``eof``) sends no ``flush_complete``: the
  remaining audio, then a normal close (1000).
* Any message after ``finish`` is an error (invalid_request_error), then
  close.
* Nonces are echoed back verbatim; they need not increase. A flush/reset
  without a nonce is acknowledged without one.
* ``reset`` is a barge-in: it drops all text not yet spoken, flushed or
  not, and cancels synthesis in flight; the acknowledgements of earlier
  flushes still go out, in order, before ``reset_complete`` (see :mod:`.stream`).
* Every error frame is followed by a close with code 1000 (PROTOCOL.md §1.6);
  only a frame beyond the transport's hard limit (8 MiB) is closed by
  aiohttp itself with 1009. Server shutdown closes with 1001.
* Limits (PROTOCOL.md §5 item 12): 64 KiB per client message, 100 000
  characters of text waiting to be spoken, the init message within 30 s,
  128 concurrent sessions (``rate_limit_error`` beyond); idle sessions are
  not timed out. All configurable through :class:`.state.Limits`.
* Unpaired surrogates in ``text`` (``"\ud800"`` escapes) become U+FFFD and
  the session goes on (REST speech, one request, answers 400 instead).
* Errors before the generation is known (binary or non-JSON first frame,
  no init in time) use the current shape.
* One ``timestamps`` frame per audio frame, sent right after it; legacy and
  command/ack sessions with extras get one extras frame (``durations``
  always present, ``buffer_empty``) right before each audio frame.
"""
from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from .. import spec
from ..codecs import STREAMING_FORMATS, normalize_format, normalize_sample_rate
from .apierror import ApiError, api_version, integer_field, json_object

__all__ = [
    "Generation",
    "SessionConfig",
    "Text",
    "Flush",
    "Reset",
    "Finish",
    "Command",
    "decode_json",
    "parse_init",
    "parse_command",
    "redact",
    "ready_frame",
    "error_frame",
    "ack_frame",
    "timings_frame",
    "REDACTED",
]

REDACTED = "<redacted>"
_KEY_FIELD = spec.KEY_FIELD
_TRUE_STRINGS = {"true", "1", "yes", "on"}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs


class Generation(enum.Enum):
    """Which websocket protocol a client speaks."""

    LEGACY = "legacy"
    COMMAND = "command"
    CURRENT = "current"


@dataclass(frozen=True)
class SessionConfig:
    """What a client asked for in its init message (already validated).

    Attributes:
        generation: protocol generation detected from the init message.
        api_version: ``"1.1"`` or ``"1.2"`` for current clients, else None.
        api_key: key as sent ("" when missing); never log it.
        voice: voice id as sent (existence is checked by the voice store).
        format: canonical streaming format name.
        sample_rate: output rate in Hz.
        language: language code as sent (ignored by the local engines).
        timings: whether timing frames (timestamps or extras) are wanted.
    """

    generation: Generation
    api_version: Optional[str]
    api_key: str
    voice: str
    format: str
    sample_rate: int
    language: str
    timings: bool

    @property
    def cumulative_timestamps(self) -> bool:
        """Return True when word starts run on until a flush/reset (API 1.2)."""
        return self.generation is Generation.CURRENT and self.api_version != "1.1"

    @property
    def extras_before_audio(self) -> bool:
        """Return True when timing frames precede their audio (legacy style)."""
        return self.generation is not Generation.CURRENT


@dataclass(frozen=True)
class Text:
    """Append text to the session buffer."""

    text: str


@dataclass(frozen=True)
class Flush:
    """Speak everything buffered now; ``style`` picks the acknowledgement."""

    nonce: Any
    style: Generation


@dataclass(frozen=True)
class Reset:
    """Drop buffered text; ``style`` picks the acknowledgement."""

    nonce: Any
    style: Generation


@dataclass(frozen=True)
class Finish:
    """No more text: speak the rest, then close."""


Command = Union[Text, Flush, Reset, Finish]


def decode_json(raw: str) -> Dict[str, Any]:
    """Decode one client text frame into a JSON object.

    Raises:
        ApiError: the frame is not JSON or not an object.
    """
    return json_object(raw, "message")


def detect_generation(init: Dict[str, Any]) -> Generation:
    """Return the protocol generation an init message announces."""
    if api_version(_str_or_none(init.get("lmnt-version"))) or "type" in init:
        return Generation.CURRENT  # a "type" key is the typed protocol's mark
    if str(init.get("protocol_version", "")).strip() == "2":
        return Generation.COMMAND
    return Generation.LEGACY


def parse_init(init: Dict[str, Any]) -> SessionConfig:
    """Validate an init message and return the session configuration.

    The API key and the voice's existence are not checked here.

    Raises:
        ApiError: invalid_request_error for a message that is not an init
            message, a missing voice, or an unsupported format/sample rate.
    """
    generation = detect_generation(init)
    if "type" in init and init["type"] != "init":
        raise ApiError("invalid_request_error", "the first message must be the init message "
                       "(with X-API-Key and voice), not a "
                       f"{str(init['type'])[:40]!r} message")
    if not {"text", "flush", "eof", "command"}.isdisjoint(init) and "voice" not in init:
        raise ApiError("invalid_request_error", "the first message must be the init message "
                       "(with X-API-Key and voice); text or commands came before it")
    voice = init.get("voice")
    if not isinstance(voice, str) or not voice.strip():
        raise ApiError("invalid_request_error", "the init message needs a non-empty 'voice'")
    fmt = _session_format(init.get("format", "mp3"))
    version = api_version(_str_or_none(init.get("lmnt-version")))
    if generation is Generation.CURRENT and version is None:
        version = "1.2"  # "type": "init" without a version: assume the newest
    return SessionConfig(
        generation=generation,
        api_version=version,
        api_key=_str_or_none(init.get(_KEY_FIELD)) or "",
        voice=voice,
        format=fmt,
        sample_rate=_sample_rate(init.get("sample_rate"), fmt),
        language=str(init.get("language") or ("auto" if version else "en")),
        timings=_wants_timings(init, generation),
    )


def parse_command(message: Dict[str, Any]) -> List[Command]:
    """Turn one decoded client message (after init) into commands, in order.

    Raises:
        ApiError: invalid_request_error for an unknown or malformed message.
    """
    if "type" in message:
        return [_typed_command(message)]
    if "command" in message:
        return [_ack_command(message)]
    return _legacy_commands(message)


def redact(message: Dict[str, Any]) -> Dict[str, Any]:
    """Return a copy of ``message`` with the API key value hidden."""
    if _KEY_FIELD not in message:
        return dict(message)
    return {**message, _KEY_FIELD: REDACTED}


def ready_frame(request_id: str) -> str:
    """Encode the current protocol's ``ready`` message."""
    return json.dumps({"type": "ready", "request_id": request_id})


def error_frame(generation: Optional[Generation], error: ApiError, request_id: str) -> str:
    """Encode an error in the shape of ``generation`` (None: not yet known).

    Before the generation is known the current shape is used; legacy clients
    still recognise it because it has an ``error`` key.
    """
    if generation in (Generation.LEGACY, Generation.COMMAND):
        return json.dumps({"error": error.message})
    body = {"type": error.slug, "message": error.message}
    return json.dumps({"type": "error", "error": body, "request_id": request_id})


def ack_frame(kind: str, nonce: Any, style: Generation) -> Optional[str]:
    """Encode the acknowledgement of a flush or reset (``kind``).

    Returns None for legacy-style flushes, which have no acknowledgement
    (legacy clients watch ``buffer_empty`` in the extras instead).
    """
    if style is Generation.CURRENT:
        message: Dict[str, Any] = {"type": f"{kind}_complete"}
    elif style is Generation.COMMAND:
        message = {"complete": kind}
    else:
        return None
    if nonce is not None:
        message["nonce"] = nonce
    return json.dumps(message)


def timings_frame(
    config: SessionConfig, words: Sequence[Dict[str, Any]], buffer_empty: bool
) -> str:
    """Encode the timing frame that accompanies one audio frame.

    Current sessions get ``timestamps`` (sent after the audio); legacy and
    command/ack sessions get extras with ``durations`` and ``buffer_empty``
    (sent before the audio).
    """
    if config.generation is Generation.CURRENT:
        return json.dumps({"type": "timestamps", "timestamps": list(words)})
    return json.dumps({"durations": list(words), "buffer_empty": buffer_empty})


def _typed_command(message: Dict[str, Any]) -> Command:
    kind = message.get("type")
    if kind == "text":
        return Text(_text_field(message))
    if kind in ("flush", "reset"):
        cls = Flush if kind == "flush" else Reset
        return cls(_nonce(message), Generation.CURRENT)
    if kind == "finish":
        return Finish()
    if kind == "init":
        raise ApiError("invalid_request_error", "the session is already initialised")
    raise ApiError("invalid_request_error", f"unknown message type {str(kind)[:40]!r}; "
                   "expected text, flush, reset or finish")


def _ack_command(message: Dict[str, Any]) -> Command:
    kind = message.get("command")
    if kind in ("flush", "reset"):
        cls = Flush if kind == "flush" else Reset
        return cls(_nonce(message), Generation.COMMAND)
    if kind in ("eof", "finish"):
        return Finish()
    raise ApiError("invalid_request_error", f"unknown command {str(kind)[:40]!r}; "
                   "expected flush, reset or eof")


def _legacy_commands(message: Dict[str, Any]) -> List[Command]:
    commands: List[Command] = []
    if "text" in message:
        commands.append(Text(_text_field(message)))
    if _truthy(message.get("flush")):
        commands.append(Flush(None, Generation.LEGACY))
    if _truthy(message.get("eof")):
        commands.append(Finish())
    if not commands and not ("flush" in message or "eof" in message):
        raise ApiError("invalid_request_error", "unrecognised message; expected text, "
                       "flush or eof")
    return commands


def _text_field(message: Dict[str, Any]) -> str:
    text = message.get("text")
    if not isinstance(text, str):
        raise ApiError("invalid_request_error", "'text' must be a string")
    # A lone surrogate (JSON "\ud800") is not text. Like WHATWG's USVString
    # conversion and JavaScript's TextEncoder (so the Node SDK sends the
    # same), it becomes U+FFFD: one bad code unit must not end a session.
    return _LONE_SURROGATE.sub("\ufffd", text)


def _nonce(message: Dict[str, Any]) -> Any:
    nonce = message.get("nonce")
    if nonce is not None and (isinstance(nonce, bool) or not isinstance(nonce, int)):
        raise ApiError("invalid_request_error", "'nonce' must be an integer")
    return nonce


def _session_format(value: Any) -> str:
    try:
        fmt = normalize_format(str(value))
    except ValueError:
        fmt = ""
    if fmt not in STREAMING_FORMATS:
        raise ApiError("invalid_request_error", f"unsupported streaming format {str(value)[:40]!r}; "
                       f"allowed: {', '.join(STREAMING_FORMATS)} (legacy aliases: raw, mulaw)")
    return fmt


def _sample_rate(value: Any, fmt: str) -> int:
    """Accept an int or a numeric string (the v2.0 SDK sends ``"24000"``)."""
    rate = None if value is None else integer_field(value, "sample_rate")
    try:
        return normalize_sample_rate(rate, fmt)
    except ValueError as exc:
        raise ApiError("invalid_request_error", str(exc)) from None


def _wants_timings(init: Dict[str, Any], generation: Generation) -> bool:
    if generation is Generation.CURRENT:
        return _truthy(init.get("return_timestamps"))
    return _truthy(init.get("send_extras")) or _truthy(init.get("return_extras"))


def _truthy(value: Any) -> bool:
    """Return the truth of a JSON flag; the v2.0 SDK sends the string "True"."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_STRINGS
    return bool(value) if isinstance(value, (bool, int, float)) else False


def _str_or_none(value: Any) -> Optional[str]:
    return None if value is None else str(value)
