"""What the player accepts as audio: chunks of bytes, or LMNT session messages.

A source is any iterable of items; a StreamingConnection is recognised by
duck typing (``recv`` and ``reset``), so this module imports nothing of the
session and the player stays protocol-agnostic.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import ConfigurationError, ConnectionClosedOK
from ..errors import TimeoutError as LmntTimeoutError
from ..messages import WordTiming

__all__ = ["Chunk", "parse_item", "is_connection", "session_messages"]


class Chunk(NamedTuple):
    """One item of a source, normalised.

    Attributes:
        audio: PCM bytes (may be empty).
        timestamps: current-wire word timings (cumulative since the last
            flush/reset), or None.
        durations: legacy word timings counted from this chunk's audio, or None.
        restart: a flush or reset ended here: later timestamps count from 0.0
            at the audio that follows.
    """

    audio: bytes
    timestamps: Optional[List[WordTiming]] = None
    durations: Optional[List[WordTiming]] = None
    restart: bool = False


def parse_item(item: Any) -> Chunk:
    """Normalise bytes-like PCM or a session message dict.

    Raises:
        ConfigurationError: ``item`` is neither (the message names its type).
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        return Chunk(bytes(item))
    if isinstance(item, dict):
        audio = item.get("audio") or b""
        if not isinstance(audio, (bytes, bytearray, memoryview)):
            raise ConfigurationError(f"a message's 'audio' must be bytes, not {type(audio).__name__}")
        restart = item.get("type") in ("flush_complete", "reset_complete")
        return Chunk(bytes(audio), item.get("timestamps"), item.get("durations"), restart)
    raise ConfigurationError(f"the player plays bytes or session message dicts, not {type(item).__name__}")


def is_connection(source: Any) -> bool:
    """Return True for a StreamingConnection-like source (``recv(timeout)`` and ``reset()``)."""
    return callable(getattr(source, "recv", None)) and callable(getattr(source, "reset", None))


def session_messages(conn: Any, poll: float, stopping: Callable[[], bool]) -> Iterator[Tuple[Any, float]]:
    """Yield ``(message, monotonic time it was returned)`` from a session until it ends.

    Reads with ``recv(poll)`` so ``stopping()`` is checked at least every
    ``poll`` seconds; ends quietly when the session closes normally or
    ``stopping()`` turns true. The time lets a player drop what was
    returned before a reset it sent. Raises what ``recv`` raises otherwise.
    """
    while not stopping():
        try:
            message = conn.recv(poll)
        except LmntTimeoutError:
            continue
        except ConnectionClosedOK:
            return
        yield message, time.monotonic()
