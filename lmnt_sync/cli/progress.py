"""A one-line progress display on stderr, for long command-line jobs.

It draws only when the stream is a terminal, only once the job has run for
a moment (short jobs stay silent), at most ten times a second, and erases
itself at the end so the terminal is left clean.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import IO, Optional

__all__ = ["Progress"]


class Progress:
    """Counts text sent and audio received; ``update()`` is thread-safe.

    Args:
        stream: where to draw (default stderr).
        delay: seconds before the first draw.
        enabled: None draws only when ``stream`` is a TTY.
    """

    def __init__(self, stream: Optional[IO[str]] = None, delay: float = 0.5,
                 enabled: Optional[bool] = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._delay = delay
        self._last_draw = 0.0
        self._drawn = False
        self._lock = threading.Lock()
        self.lines = self.characters = self.audio_bytes = 0
        self.audio_seconds = 0.0

    def sent(self, text: str) -> None:
        """Count a line of text sent to the server."""
        with self._lock:
            self.lines += 1
            self.characters += len(text)
        self._maybe_draw()

    def received(self, nbytes: int, seconds: float = 0.0) -> None:
        """Count audio received (``seconds`` when the format tells, e.g. PCM)."""
        with self._lock:
            self.audio_bytes += nbytes
            self.audio_seconds += seconds
        self._maybe_draw()

    def close(self) -> None:
        """Erase the line if one was drawn; idempotent."""
        with self._lock:
            if self._drawn:
                self._stream.write("\r\033[K")
                self._stream.flush()
                self._drawn = False
            self._enabled = False

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._enabled or now - self._start < self._delay or now - self._last_draw < 0.1:
                return
            self._last_draw, self._drawn = now, True
            audio = f"{self.audio_seconds:.1f} s" if self.audio_seconds else f"{self.audio_bytes / 1024:.0f} KiB"
            self._stream.write(f"\rlmnt-sync: {self.lines} line(s), {self.characters} characters sent, "
                               f"{audio} of audio received\033[K")
            self._stream.flush()
