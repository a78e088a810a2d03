"""A StreamingConnection as a Player sees it: what its feed took, and when.

Bench instrumentation for ``heard_latency.py`` and ``player_cost.py``:
``Player.play(SeenConnection(conn))`` plays the session as usual (the
wrapper has the ``recv``/``reset``/``wake`` the player looks for) while the
wrapper notes when the first audio of a turn reached the player and when
the turn's ``flush_complete`` did.

Why :meth:`wait_taken`: ``conn.flush(wait=True)`` returns once the
acknowledgement has reached the *session*; the player's feed thread may not
have taken the turn's audio out of it yet, and ``Player.wait_idle()``
called then can return at once (seen on a loaded machine). Waiting until
the feed has taken the acknowledgement means every audio message before it
is in the player's buffer.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

__all__ = ["SeenConnection"]


class SeenConnection:
    """Wraps ``conn``; thread-safe for one feed thread and one caller."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.first: Optional[float] = None  # monotonic time the turn's first audio was taken
        self.pcm = bytearray()  # the turn's audio
        self.audio_bytes = 0  # audio taken since the start
        self._taken = threading.Event()

    def mark(self) -> None:
        """Start a new turn (call before its text is sent)."""
        self.first, self.pcm = None, bytearray()
        self._taken.clear()

    def wait_taken(self, timeout: float) -> None:
        """Block until the feed has taken the turn's ``flush_complete``.

        Raises:
            RuntimeError: not within ``timeout`` seconds.
        """
        if not self._taken.wait(timeout):
            raise RuntimeError(f"the player did not take the turn within {timeout:g} s")

    def recv(self, *args: Any, **kwargs: Any) -> Any:
        message = self.conn.recv(*args, **kwargs)
        audio = message.get("audio")
        if audio:
            if self.first is None:
                self.first = time.monotonic()
            self.pcm += audio
            self.audio_bytes += len(audio)
        if message.get("type") == "flush_complete":
            self._taken.set()
        return message

    def reset(self) -> None:
        self.conn.reset()

    def wake(self) -> None:
        self.conn.wake()
