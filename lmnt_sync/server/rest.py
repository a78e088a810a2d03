"""REST handlers: speech, voices and account, at LMNT's paths.

Handlers raise :class:`~.apierror.ApiError`; the middleware in :mod:`.app`
renders it for the client's API version and adds the ``request-id`` header.

Decisions where PROTOCOL.md leaves room:

* Speech bodies may be JSON, ``multipart/form-data`` or
  ``application/x-www-form-urlencoded``; form values are coerced
  (``"true"``/``"false"``, numeric strings). ``speed``, ``model``,
  ``temperature``, ``top_p``, ``conversational``, ``length``, ``debug`` and
  ``language`` are accepted and ignored (the local engines speak English).
* ``POST /v1/ai/speech/bytes`` streams streamable formats chunk by chunk as
  they are synthesized; ``wav`` and ``aac`` are sent whole.
* ``POST /v1/ai/speech`` returns ``timestamps`` (API ≥ 1.1) or ``durations``
  plus ``seed`` (legacy), with one entry per *word* (no entries for spaces
  or punctuation; PROTOCOL.md §5 item 10), starts counted from the start of
  the audio.
* ``POST /v1/ai/speech/convert`` (voice conversion, SDKs lmnt 1.2.0 and
  2.0-2.5.1) answers 501 Not Implemented in LMNT's error shape: the local
  engines are text-to-speech only, and re-speaking a transcript of the
  audio would not be a conversion of it.
* ``GET /v1/account`` reports a local plan (``type`` ``"local"``) and counts
  the characters this server process synthesized.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..codecs import STREAMING_FORMATS, Encoder, content_type, normalize_format, normalize_sample_rate
from .apierror import ApiError, integer_field, json_object, rest_error_body, speakable
from .engines.base import Engine
from .state import API_VERSION, REQUEST_ID, STREAMING, ServerState
from .synthesis import ChunkSource, in_worker, synthesize_all
from .voices import VoiceRef

__all__ = [
    "STATE_KEY",
    "speech_bytes",
    "speech_detailed",
    "speech_convert",
    "voice_list",
    "voice_info",
    "voice_update",
    "voice_delete",
    "voice_create",
    "account",
    "CHARACTER_LIMIT",
]

STATE_KEY: web.AppKey[ServerState] = web.AppKey("lmnt_sync_state", ServerState)

#: Characters per "billing period" reported by the local account.
CHARACTER_LIMIT = 10_000_000

_FILE_FIELDS = {"file", "files", "files[]", "file_field"}
_MAX_FIELD_BYTES = 64 * 1024
_WRITE_BYTES = 1024 * 1024  # upload bytes gathered per write (one thread hop each)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class _SpeechParams:
    text: str
    voice: VoiceRef
    format: str
    sample_rate: int
    timings: bool
    seed: int


# -- speech ----------------------------------------------------------------


async def speech_bytes(request: web.Request) -> web.StreamResponse:
    """Handle ``POST /v1/ai/speech/bytes``: audio bytes, streamed if possible."""
    state, params, engine, encoder = await _start_speech(request)
    if params.format not in STREAMING_FORMATS:
        audio, _ = await in_worker(state.executor, synthesize_all, engine, params.text,
                                   params.voice.voice, encoder)
        return web.Response(body=audio, content_type=content_type(params.format))
    # Starts just before the first sound, like a streamed turn and POST /v1/ai/speech.
    source = ChunkSource(engine, params.text, params.voice.voice, encoder, opens_turn=True)
    # The first chunk is made before the headers go out, so a synthesis
    # failure can still be reported with a proper status.
    step = await in_worker(state.executor, source.next_encoded)
    response = web.StreamResponse(headers={"request-id": request[REQUEST_ID]})
    response.content_type = content_type(params.format)
    await response.prepare(request)
    request[STREAMING] = True  # from here on errors can only cut the stream
    try:
        while step is not None:
            await response.write(step[1])
            step = await in_worker(state.executor, source.next_encoded)
        await response.write(await in_worker(state.executor, encoder.finish))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client hung up; nobody is left to tell
    return response


async def speech_detailed(request: web.Request) -> web.Response:
    """Handle ``POST /v1/ai/speech``: JSON with base64 audio and timings."""
    state, params, engine, encoder = await _start_speech(request)
    audio, words = await in_worker(state.executor, synthesize_all, engine, params.text,
                                   params.voice.voice, encoder)
    body: Dict[str, Any] = {"audio": base64.b64encode(audio).decode("ascii")}
    if request[API_VERSION] is not None:
        if params.timings:
            body["timestamps"] = words
    else:
        body["seed"] = params.seed
        if params.timings:
            body["durations"] = words
    return web.json_response(body)


#: Message of the 501 answer to ``POST /v1/ai/speech/convert``.
CONVERT_UNSUPPORTED = ("voice conversion is not supported by this server (POST /v1/ai/speech/convert): "
                       "its engines only turn text into speech; synthesize the text with "
                       "/v1/ai/speech/bytes instead")


async def speech_convert(request: web.Request) -> web.Response:
    """Handle ``POST /v1/ai/speech/convert``: always 501 Not Implemented.

    ``x-should-retry: false`` stops the official SDKs (2.x, lmnt-node) from
    retrying, as they do for other 5xx answers; a retry cannot succeed.
    """
    error = ApiError("invalid_request_error", CONVERT_UNSUPPORTED, status=501)
    return web.json_response(rest_error_body(error, request[API_VERSION]), status=error.status,
                             headers={"x-should-retry": "false"})


async def _start_speech(request: web.Request) -> Tuple[ServerState, _SpeechParams, Engine, Encoder]:
    """Read and check a speech request; return what synthesis needs.

    Raises:
        ApiError: invalid fields, unknown voice, text over the limit.
    """
    state = request.app[STATE_KEY]
    params = _speech_params(await _read_fields(request), state, request)
    engine = state.engines[params.voice.engine]
    state.characters += len(params.text)
    return state, params, engine, Encoder(params.format, params.sample_rate, engine.sample_rate)


def _speech_params(fields: Dict[str, Any], state: ServerState, request: web.Request) -> _SpeechParams:
    text = fields.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError("invalid_request_error", "'text' is required and must be non-empty")
    speakable(text, "'text'")
    limit = state.limits.max_rest_chars
    if len(text) > limit:
        raise ApiError("invalid_request_error", f"'text' has {len(text)} characters; "
                       f"the limit is {limit} per request")
    voice = fields.get("voice")
    if not isinstance(voice, str) or not voice:
        raise ApiError("invalid_request_error", "'voice' is required")
    fmt = _format(fields.get("format"))
    wants = fields.get("return_timestamps") if request[API_VERSION] else None
    if wants is None:
        wants = fields.get("return_durations", fields.get("durations"))
    return _SpeechParams(
        text=text,
        voice=state.voices.resolve(voice),
        format=fmt,
        sample_rate=_rate(fields.get("sample_rate"), fmt),
        timings=_flag(wants, "return_timestamps"),
        seed=(integer_field(fields.get("seed"), "seed") if fields.get("seed") not in (None, "")
              else random.randrange(2**31)),
    )


def _format(value: Any) -> str:
    try:
        return normalize_format("mp3" if value in (None, "") else str(value))
    except ValueError as exc:
        raise ApiError("invalid_request_error", str(exc)) from None


def _rate(value: Any, fmt: str) -> int:
    try:
        rate = None if value in (None, "") else integer_field(value, "sample_rate")
        return normalize_sample_rate(rate, fmt)
    except ValueError as exc:
        raise ApiError("invalid_request_error", str(exc)) from None


async def _read_fields(request: web.Request) -> Dict[str, Any]:
    """Return the body's fields from JSON, multipart or urlencoded bodies."""
    ctype = request.content_type
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        with _malformed_body("form body"):
            form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    if not raw.strip():
        return {}
    return json_object(raw, "request body")


@contextlib.contextmanager
def _malformed_body(what: str) -> Iterator[None]:
    """Turn aiohttp's errors for a body it cannot parse into invalid_request_error.

    aiohttp raises ValueError (bad boundary, nameless field, undecodable
    text), LookupError (unknown charset) or HttpProcessingError (bad part
    headers); all are the client's fault.
    """
    try:
        yield
    except (ValueError, LookupError, HttpProcessingError) as exc:
        reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise ApiError("invalid_request_error", f"malformed {what}: {reason.strip()[:120]}") from None


# -- voices ----------------------------------------------------------------


async def voice_list(request: web.Request) -> web.Response:
    """Handle ``GET /v1/ai/voice/list`` (query ``owner``, ``starred``)."""
    store = request.app[STATE_KEY].voices
    owner = request.query.get("owner", "all").lower()
    starred = _flag(request.query.get("starred"), "starred")
    return web.json_response(store.list(owner=owner, starred=starred))


async def voice_info(request: web.Request) -> web.Response:
    """Handle ``GET /v1/ai/voice/{id}``."""
    store = request.app[STATE_KEY].voices
    return web.json_response(store.get(request.match_info["voice_id"]))


async def voice_update(request: web.Request) -> web.Response:
    """Handle ``PUT /v1/ai/voice/{id}``: only the given keys change."""
    store = request.app[STATE_KEY].voices
    changes = await _read_fields(request)
    voice = await asyncio.to_thread(store.update, request.match_info["voice_id"], changes)
    return web.json_response({"voice": voice})


async def voice_delete(request: web.Request) -> web.Response:
    """Handle ``DELETE /v1/ai/voice/{id}``."""
    store = request.app[STATE_KEY].voices
    await asyncio.to_thread(store.delete, request.match_info["voice_id"])
    return web.json_response({"success": True})


async def voice_create(request: web.Request) -> web.Response:
    """Handle ``POST /v1/ai/voice`` in any of the three multipart layouts.

    Any ``multipart/*`` content type is read the same way. Layouts (PROTOCOL.md §2.4):
    ``file`` + fields + ``tags[]`` (current);
    ``files[]``/``files`` + fields + ``enhance`` (v2 pre-1.1); ``metadata``
    JSON part + ``file_field`` parts (legacy).
    """
    state = request.app[STATE_KEY]
    # Any multipart subtype: the legacy SDK (lmnt 1.x) sends aiohttp's
    # default multipart/mixed, with form-data dispositions on its parts.
    if not request.content_type.startswith("multipart/"):
        raise ApiError("invalid_request_error", "creating a voice needs a multipart body "
                       "(e.g. multipart/form-data) with the audio file(s)")
    fields: Dict[str, List[str]] = {}
    files: List[Path] = []
    try:
        with _malformed_body("multipart body"):
            metadata = await _read_voice_parts(request, state, fields, files)
        voice = await asyncio.to_thread(
            state.voices.create,
            _first(fields, metadata, "name") or "",
            files,
            description=_first(fields, metadata, "description"),
            gender=_first(fields, metadata, "gender"),
            tags=fields.get("tags[]", []) + fields.get("tags", []) + list(metadata.get("tags") or []),
        )
    except BaseException:
        await asyncio.to_thread(state.voices.discard_uploads, files)
        raise
    return web.json_response(voice)


async def _read_voice_parts(request: web.Request, state: ServerState,
                            fields: Dict[str, List[str]], files: List[Path]) -> Dict[str, Any]:
    """Read every part: files to disk (appended to ``files``), fields to ``fields``.

    Bounded (:class:`.state.Limits`): parts, files, bytes per file and in
    total, and field bytes in total; each bound gets a clear error.
    """
    limits = state.limits
    reader = await request.multipart()
    metadata: Dict[str, Any] = {}
    budget = [limits.max_upload_bytes]
    field_budget = [limits.max_voice_metadata_bytes]
    for _ in range(limits.max_upload_parts + 1):
        part = await reader.next()
        if part is None:
            return metadata
        if not isinstance(part, BodyPartReader):
            raise ApiError("invalid_request_error", "nested multipart bodies are not supported")
        if part.filename is not None or part.name in _FILE_FIELDS:
            if len(files) >= limits.max_upload_files:
                raise ApiError("invalid_request_error", f"a voice takes at most "
                               f"{limits.max_upload_files} audio files", status=413)
            files.append(await _save_upload(part, state, budget))
        elif part.name == "metadata":
            metadata = json_object(await _read_field(part, field_budget), "the 'metadata' part")
        elif part.name:
            fields.setdefault(part.name, []).append(await _read_field(part, field_budget))
    raise ApiError("invalid_request_error", f"a voice upload has at most {limits.max_upload_parts} "
                   "parts (files and fields)", status=413)


async def _save_upload(part: BodyPartReader, state: ServerState, budget: List[int]) -> Path:
    """Stream one file part to disk; the writes run in a thread, off the event loop."""
    limits = state.limits
    path = state.voices.upload_path(part.filename)
    size, pending = 0, bytearray()
    with await asyncio.to_thread(open, path, "wb") as out:
        while True:
            chunk = await part.read_chunk()
            size += len(chunk)
            budget[0] -= len(chunk)
            if size > limits.max_file_bytes or budget[0] < 0:
                out.close()
                await asyncio.to_thread(path.unlink, missing_ok=True)
                what = (f"one file exceeds {limits.max_file_bytes} bytes" if size > limits.max_file_bytes
                        else f"uploaded audio exceeds {limits.max_upload_bytes} bytes")
                raise ApiError("invalid_request_error", what, status=413)
            pending += chunk
            if pending and (not chunk or len(pending) >= _WRITE_BYTES):
                await asyncio.to_thread(out.write, bytes(pending))
                pending.clear()
            if not chunk:
                return path


async def _read_field(part: BodyPartReader, budget: List[int]) -> str:
    data = bytearray()
    while True:
        chunk = await part.read_chunk()
        if not chunk:
            return data.decode("utf-8", errors="replace")
        data += chunk
        budget[0] -= len(chunk)
        if len(data) > _MAX_FIELD_BYTES or budget[0] < 0:
            raise ApiError("invalid_request_error", f"form field {str(part.name)[:40]!r} is too "
                           "large (fields may hold 64 KiB in all)", status=413)


def _first(fields: Dict[str, List[str]], metadata: Dict[str, Any], key: str) -> Optional[str]:
    if fields.get(key):
        return fields[key][0]
    value = metadata.get(key)
    return None if value is None else str(value)


# -- account ---------------------------------------------------------------


async def account(request: web.Request) -> web.Response:
    """Handle ``GET /v1/account`` in the current or the legacy shape."""
    state = request.app[STATE_KEY]
    used = state.characters
    plan: Dict[str, Any] = {"character_limit": CHARACTER_LIMIT, "commercial_use_allowed": True,
                            "type": "local"}
    if request[API_VERSION] is not None:
        usage: Dict[str, Any] = {"characters": max(CHARACTER_LIMIT - used, 0)}
    else:
        created = len(state.voices.list(owner="me"))
        plan.update(instant_voice_limit=None, professional_voice_limit=None)
        usage = {"characters": used, "instant_voices": created, "professional_voices": 0}
    return web.json_response({"plan": plan, "usage": usage})


# -- coercion --------------------------------------------------------------


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ApiError("invalid_request_error", f"{name!r} must be true or false")
