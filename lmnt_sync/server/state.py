"""What one running server shares between its handlers: config and registries.

Everything here is touched from the server's event-loop thread only, except
:class:`FrameRecorder`, which tests read from their own thread (it locks).
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

from aiohttp import web

from .auth import Auth
from .engines.base import Engine
from .voices import VoiceStore

__all__ = [
    "Limits", "FrameRecorder", "ServerState", "DEFAULT_MAX_SESSIONS",
    "REQUEST_ID", "API_VERSION", "STREAMING",
]

DEFAULT_MAX_SESSIONS = 128


def _request_key(name: str, kind: type) -> Any:
    """Return a typed request key (aiohttp >= 3.12) or a plain string key."""
    key_class = getattr(web, "RequestKey", None)
    return key_class(name, kind) if key_class is not None else name


#: Per-request values set by the middleware / handlers.
REQUEST_ID = _request_key("lmnt_request_id", str)
API_VERSION = _request_key("lmnt_api_version", object)  # "1.1", "1.2" or None (legacy)
STREAMING = _request_key("lmnt_streaming", bool)  # headers already sent


@dataclass(frozen=True)
class Limits:
    """Resource limits; each violation gets a clear error, others carry on.

    Attributes:
        max_sessions: concurrent websocket sessions (after init).
        max_message_bytes: size of one client websocket message.
        max_buffered_chars: text a session may hold not yet synthesized.
        max_rest_chars: text per REST speech request (LMNT: 5000).
        max_upload_bytes: total audio per voice creation (LMNT: 250 MB).
        max_file_bytes: one uploaded audio file.
        max_upload_files: audio files per voice creation.
        max_upload_parts: multipart parts (files and fields) per creation.
        max_voice_metadata_bytes: a voice's fields (name, description,
            tags) in all, as uploaded and as stored.
        max_voices: created voices the store holds.
        store_timeout: seconds a voice change waits for the database
            (another process's write lock, or connecting).
        init_timeout: seconds a new websocket may wait before its init.
        idle_timeout: seconds a connection may take to send a request's
            headers, or stay idle between requests, before it is closed
            (aiohttp's ``keepalive_timeout``, which also runs from the
            moment a connection is accepted): half-sent requests cannot
            hold sockets for long (slowloris).
        ping_interval: seconds a websocket peer may show no life (no frame
            from it, no progress draining what we queued for it) before the
            server pings it; with still none half that long later it is
            dropped (None: no pings). See :mod:`.keepalive`.
    """

    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_message_bytes: int = 64 * 1024
    max_buffered_chars: int = 100_000
    max_rest_chars: int = 5000
    max_upload_bytes: int = 250 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    max_upload_files: int = 32
    max_upload_parts: int = 128
    max_voice_metadata_bytes: int = 64 * 1024
    max_voices: int = 10_000
    store_timeout: float = 5.0
    init_timeout: float = 30.0
    idle_timeout: float = 15.0
    ping_interval: Optional[float] = 20.0

    @property
    def transport_message_bytes(self) -> int:
        """Return aiohttp's hard frame limit, far above ours.

        Frames between the two limits are read whole and get our clear
        error. Larger ones are cut off by aiohttp unread (close 1009, no
        error frame; the client may even see a reset, as its unread data
        is discarded), so this bound is generous: 8 MiB at least, paid
        only transiently by a client that ignores the documented limit.
        """
        return max(8 * 1024 * 1024, 16 * self.max_message_bytes)


class FrameRecorder:
    """Keeps, per websocket session, the JSON messages the client sent.

    Args:
        enabled: when False nothing is kept (no memory cost).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._sessions: List[List[Dict[str, Any]]] = []

    def new_session(self) -> Optional[List[Dict[str, Any]]]:
        """Return the list to append this session's messages to, or None."""
        if not self.enabled:
            return None
        frames: List[Dict[str, Any]] = []
        with self._lock:
            self._sessions.append(frames)
        return frames

    def record(self, frames: Optional[List[Dict[str, Any]]], message: Dict[str, Any]) -> None:
        """Append ``message`` (already redacted) to a session's list."""
        if frames is not None:
            with self._lock:
                frames.append(message)

    def snapshot(self) -> List[List[Dict[str, Any]]]:
        """Return a copy of every session's messages, in connection order."""
        with self._lock:
            return [list(frames) for frames in self._sessions]


@dataclass
class ServerState:
    """The shared objects of one server.

    Attributes:
        engines: the speech engines by name (the voice store says which
            engine speaks which voice).
        voices: the voice store.
        auth: the API-key check.
        limits: resource limits.
        executor: worker threads for synthesis and encoding.
        recorder: client frames kept for tests.
        sessions: websocket sessions that passed init.
        connections: open websocket connections (with or without init).
        characters: characters synthesized so far (for ``/v1/account``).
    """

    engines: Dict[str, Engine]
    voices: VoiceStore
    auth: Auth
    limits: Limits
    executor: Executor
    recorder: FrameRecorder
    sessions: Set[Any] = field(default_factory=set)
    connections: Set[Any] = field(default_factory=set)
    tasks: Set[asyncio.Task[Any]] = field(default_factory=set)
    characters: int = 0
