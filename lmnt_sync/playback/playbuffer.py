"""The player's jitter buffer: PCM waiting to be played, counted in whole frames.

Pure and clock-free: the player thread decides when to take audio out; this
only keeps bytes in order, pads a short take with silence and remembers
where each frame sits in the stream of everything ever pushed ("source
frames"), so word timings can be matched to the audio they describe.
"""
from __future__ import annotations

from typing import Tuple

__all__ = ["JitterBuffer"]


class JitterBuffer:
    """A FIFO of PCM bytes with source-frame positions.

    Args:
        frame_bytes: bytes per frame (sample width times channels).

    Attributes:
        head: source position of the first buffered frame.
        tail: source position just past the last whole buffered frame
            (i.e. how many whole frames were ever pushed).
    """

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._data = bytearray()
        self.head = 0

    @property
    def frames(self) -> int:
        """Return how many whole frames are buffered."""
        return len(self._data) // self.frame_bytes

    @property
    def tail(self) -> int:
        """Return the source position just past the last whole buffered frame."""
        return self.head + self.frames

    def push(self, pcm: bytes) -> None:
        """Append PCM; a chunk may end mid-frame, the next one completes it."""
        self._data += pcm

    def take(self, frames: int) -> Tuple[bytes, int, int]:
        """Remove up to ``frames`` frames; pad the block with silence to full size.

        Returns:
            ``(block, source_start, audio_frames)``: exactly ``frames`` frames
            of bytes, the source position of its first audio frame, and how
            many of its frames are audio (the rest is zero-valued silence,
            which is silence for both signed-int16 and float32 PCM).
        """
        start = self.head
        audio = min(frames, self.frames)
        size = audio * self.frame_bytes
        block = bytes(self._data[:size])
        del self._data[:size]
        self.head += audio
        return block + bytes((frames - audio) * self.frame_bytes), start, audio

    def clear(self) -> int:
        """Drop everything buffered (a partial frame too); return the frames dropped."""
        dropped = self.frames
        self.head += dropped
        self._data.clear()
        return dropped
