"""A bench engine that makes audio instantly and stamps every chunk.

It keeps the engine out of the client figures: "speech" is a fixed byte
pattern, ready at once. Every chunk starts with a 24-byte header:

    bytes 0..8    send stamp: ``time.perf_counter_ns()`` written by the
                  server process (``server_proc.py``) just before the frame
                  is handed to the socket; here a placeholder
    bytes 8..16   engine stamp: ``perf_counter_ns()`` when the chunk was made
    bytes 16..20  MAGIC, so the server process knows which frames to stamp
    bytes 20..24  chunk index (little-endian uint32)

and the rest is a pattern that depends only on the position, so a client
can check that the server passed the bytes through unchanged (pcm_s16le at
the engine's own rate is a pass-through in ``codecs.Encoder``).
``perf_counter_ns`` is CLOCK_MONOTONIC on Linux: one clock for every
process on the machine, so the server's stamp and the client's clock compare.

Voices (the voice id picks the behaviour; sizes come from the constructor):

* ``instant``: one chunk per segment of text, ``instant_bytes`` long;
* ``paced``: one chunk per word, ``paced_bytes`` long, ``pace_s`` apart
  (spaced frames, so hand-off latency is measured without queueing);
* ``burst``: one chunk per word, ``burst_bytes`` long, as fast as possible
  (one long stream, for throughput). Burst chunks carry no MAGIC, so the
  server process does not touch them.
"""
from __future__ import annotations

import struct
import time
from typing import Iterator, List, Sequence

from lmnt_sync.server.engines.base import LocalVoice, SpeechChunk, WordTiming

__all__ = ["StampEngine", "HEADER", "MAGIC", "pattern", "send_stamp", "check_chunk"]

HEADER = 24
MAGIC = b"LMNT"
_RATE = 24000
_PATTERN = bytes(range(256)) * 4096  # 1 MiB; chunk bytes [HEADER:] = _PATTERN[HEADER:n]


def pattern(size: int) -> bytes:
    """Return the expected bytes ``[HEADER:size]`` of a chunk of ``size`` bytes."""
    return _PATTERN[HEADER:size]


def send_stamp(frame: bytes) -> int:
    """Return the server's send stamp (ns) of a received frame."""
    return int.from_bytes(frame[:8], "little")


def check_chunk(frame: bytes, size: int) -> bool:
    """Return True if ``frame`` is an untouched stamped chunk of ``size`` bytes."""
    return len(frame) == size and frame[16:20] in (MAGIC, b"\0\0\0\0") and frame[HEADER:] == pattern(size)


class StampEngine:
    """Instant, stamped "speech" at 24 kHz (see the module docstring)."""

    name = "bench"
    sample_rate = _RATE

    def __init__(self, instant_bytes: int = 4800, paced_bytes: int = 4800, pace_s: float = 0.01,
                 burst_bytes: int = 65536) -> None:
        for size in (instant_bytes, paced_bytes, burst_bytes):
            if size < HEADER or size % 2 or size > len(_PATTERN):
                raise ValueError(f"chunk size must be even, {HEADER}..{len(_PATTERN)} bytes, not {size}")
        self.instant_bytes = instant_bytes
        self.paced_bytes = paced_bytes
        self.pace_s = pace_s
        self.burst_bytes = burst_bytes

    def voices(self) -> Sequence[LocalVoice]:
        """Return the three bench voices."""
        return [
            LocalVoice("instant", "Instant", "nonbinary", "bench: one chunk per segment, at once"),
            LocalVoice("paced", "Paced", "nonbinary", "bench: one chunk per word, spaced"),
            LocalVoice("burst", "Burst", "nonbinary", "bench: one large chunk per word, at once"),
        ]

    def load(self) -> None:
        """Nothing to load."""

    def synthesize(self, text: str, voice: str) -> Iterator[SpeechChunk]:
        """Yield stamped chunks for ``text`` (see the module docstring).

        Raises:
            KeyError: unknown voice.
        """
        words = text.split()
        if voice == "instant":
            yield self._chunk(0, self.instant_bytes, words, MAGIC)
        elif voice == "paced":
            for i, word in enumerate(words):
                if i:
                    time.sleep(self.pace_s)
                yield self._chunk(i, self.paced_bytes, [word], MAGIC)
        elif voice == "burst":
            for i, word in enumerate(words):
                yield self._chunk(i, self.burst_bytes, [word], b"\0\0\0\0")
        else:
            raise KeyError(f"unknown bench voice {voice!r}")

    @staticmethod
    def _chunk(index: int, size: int, words: List[str], magic: bytes) -> SpeechChunk:
        seconds = size / 2 / _RATE
        step = seconds / max(len(words), 1)
        header = struct.pack("<QQ4sI", 0, time.perf_counter_ns(), magic, index)
        return SpeechChunk(
            pcm=header + _PATTERN[HEADER:size],
            words=[WordTiming(w, i * step, step) for i, w in enumerate(words)],
        )
