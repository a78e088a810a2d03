"""Word timings for a stream of audio frames, in each generation's units.

The engine gives word starts relative to the chunk that carries them; the
encoder says where that chunk will sound in the *decoded* stream
(:attr:`lmnt_sync.codecs.Encoder.position_seconds`: codec delay such as mp3's 1105
samples, drain padding and resampling accounted for). What a client
receives depends on its protocol (PROTOCOL.md §1.5, §1.3):

* API 1.2 (``cumulative=True``): starts count from the beginning of the
  audio since the session start or the last flush/reset.
* API 1.1 and legacy extras (``cumulative=False``): starts count from the
  beginning of the audio *frame* the timings accompany.

An encoder may hold audio back (an mp3 frame is not full yet), so one frame
can cover several engine chunks; timings of chunks whose audio has not gone
out yet stay pending and are placed on the frame that finally carries them.
Pure and clock-free.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .engines.base import SpeechChunk

__all__ = ["Timeline"]


class Timeline:
    """Pending word timings of one stream, placed in decoded-audio time.

    Args:
        cumulative: API 1.2 semantics (see module docstring).
    """

    def __init__(self, cumulative: bool) -> None:
        self._cumulative = cumulative
        self._origin = 0.0  # decoded seconds where the current turn's audio begins
        self._pending: List[Tuple[str, float, float]] = []  # (text, decoded start, duration)

    @property
    def has_pending(self) -> bool:
        """Return True when timings wait for the frame that carries them."""
        return bool(self._pending)

    def add(self, chunk: SpeechChunk, at: float) -> None:
        """Record ``chunk``'s words; its audio sounds from ``at`` (decoded seconds)."""
        for word in chunk.words:
            self._pending.append((word.text, at + word.start, word.duration))

    def take(self, frame_start: float = 0.0) -> List[Dict[str, Any]]:
        """Return the pending timings for a frame that starts at ``frame_start``.

        ``frame_start``: decoded seconds of audio the client had before the
        frame these timings accompany (used by per-frame generations).
        """
        origin = self._origin if self._cumulative else frame_start
        words = [{"text": text, "start": round(max(0.0, start - origin), 4), "duration": round(duration, 4)}
                 for text, start, duration in self._pending]
        self._pending = []
        return words

    def restart(self, origin: float) -> None:
        """Count from 0.0 again from ``origin`` on (decoded seconds; after a flush or reset)."""
        self._origin = origin
        self._pending = []
