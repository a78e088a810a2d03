"""LMNT's wire constants, in one place for both sides.

The client (``protocol.py``, ``client.py``, ``rest.py``, ``transport.py``)
and the server (``server/``) import these names, so what one side sends and
the other accepts cannot drift apart. Sources: docs/PROTOCOL.md and the
official SDKs (lmnt 2.13 for the current wire, lmnt 1.1.4 for the legacy one).
This module imports nothing and holds no logic.
"""
from __future__ import annotations

__all__ = [
    "STREAM_PATH",
    "API_VERSION",
    "CURRENT",
    "LEGACY",
    "SESSION_FORMATS",
    "LEGACY_FORMATS",
    "SAMPLE_RATES",
    "KEY_FIELD",
    "NORMAL_CLOSE",
    "MSG_TEXT",
    "MSG_FLUSH",
    "MSG_RESET",
    "MSG_FINISH",
    "MSG_READY",
    "MSG_TIMESTAMPS",
    "MSG_FLUSH_COMPLETE",
    "MSG_RESET_COMPLETE",
    "MSG_ERROR",
]

#: The websocket path of a streaming session, below the REST base URL.
STREAM_PATH = "/v1/ai/speech/stream"

#: Newest API version: what lmnt 2.13 sends as ``lmnt-version`` (header and init field).
API_VERSION = "1.2"

#: Wire generations the client speaks.
CURRENT = "current"  # typed messages, lmnt-version 1.1/1.2 (lmnt 2.x)
LEGACY = "legacy"  # {"text"}, {"flush": true}, {"eof": true} (lmnt 1.x)

#: Streaming formats, per generation (``raw``/``mulaw`` are legacy aliases).
SESSION_FORMATS = ("mp3", "pcm_s16le", "pcm_f32le", "ulaw", "webm")
LEGACY_FORMATS = ("mp3", "raw", "ulaw", "mulaw", "webm")

#: Output sample rates the API offers, in Hz.
SAMPLE_RATES = (8000, 16000, 24000)

#: The init message's key field (the websocket carries the key in-band).
KEY_FIELD = "X-API-Key"

#: Websocket close code of a normal end (after ``finish``, or an error frame).
NORMAL_CLOSE = 1000

# Message ``type`` values on the current wire: client -> server ...
MSG_TEXT = "text"
MSG_FLUSH = "flush"
MSG_RESET = "reset"
MSG_FINISH = "finish"
# ... and server -> client.
MSG_READY = "ready"
MSG_TIMESTAMPS = "timestamps"
MSG_FLUSH_COMPLETE = "flush_complete"
MSG_RESET_COMPLETE = "reset_complete"
MSG_ERROR = "error"
