"""Word timings for a stream of audio frames, in each generation's units.

The engine gives word starts relative to the chunk that carries them. What
a client receives depends on its protocol (PROTOCOL.md §1.5, §1.3):

* API 1.2 (``cumulative=True``): starts count from the beginning of the
  audio since the session start or the last flush/reset.
* API 1.1 and legacy extras (``cumulative=False``): starts count from the
  beginning of the audio *frame* the timings accompany.

An encoder may hold audio back (an mp3 frame is not full yet), so one frame
can cover several engine chunks; timings of chunks whose audio has not gone
out yet stay pending and are shifted onto the frame that finally carries
them. Pure and clock-free.
"""
from __future__ import annotations

from typing import Any, Dict, List

from .engines.base import SpeechChunk

__all__ = ["Timeline"]


class Timeline:
    """Tracks audio position and pending word timings for one session.

    Args:
        sample_rate: rate of the engine PCM given to :meth:`add`.
        cumulative: API 1.2 semantics (see module docstring).
    """

    def __init__(self, sample_rate: int, cumulative: bool) -> None:
        self._bytes_per_second = 2.0 * sample_rate  # int16 mono
        self._cumulative = cumulative
        self._position = 0.0  # seconds of audio since the last restart
        self._frame_start = 0.0  # position where the pending frame begins
        self._pending: List[Dict[str, Any]] = []

    @property
    def has_pending(self) -> bool:
        """Return True when timings wait for the frame that carries them."""
        return bool(self._pending)

    def add(self, chunk: SpeechChunk) -> None:
        """Record that ``chunk`` went into the encoder."""
        origin = 0.0 if self._cumulative else self._frame_start
        shift = self._position - origin
        for word in chunk.words:
            self._pending.append({
                "text": word.text,
                "start": round(word.start + shift, 4),
                "duration": round(word.duration, 4),
            })
        self._position += len(chunk.pcm) / self._bytes_per_second

    def add_silence(self, seconds: float) -> None:
        """Record silence the encoder inserted (drain padding) before later audio."""
        self._position += seconds

    def take(self) -> List[Dict[str, Any]]:
        """Return the pending timings; the next frame begins here."""
        words, self._pending = self._pending, []
        self._frame_start = self._position
        return words

    def restart(self) -> None:
        """Start counting from 0.0 again (after a flush or reset)."""
        self._position = 0.0
        self._frame_start = 0.0
        self._pending = []
