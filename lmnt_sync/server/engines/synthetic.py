"""A model-free engine that "speaks" instantly with tone bursts.

Each word becomes a short sine burst (60 ms + 40 ms per character) with a
soft attack/release, separated by 50 ms gaps, so tests and benchmarks get
speech-shaped audio and exact word timings without any model cost. The pitch
of each burst is derived from the word so different texts sound different.
One chunk is produced per sentence, mirroring the real adapters.
"""
from __future__ import annotations

import zlib
from typing import Dict, Iterator, List, Sequence

import numpy as np

from . import split_sentences
from .base import LocalVoice, SpeechChunk, WordTiming

__all__ = ["SyntheticEngine"]

_WORD_BASE_S = 0.060
_PER_CHAR_S = 0.040
_GAP_S = 0.050
_RAMP_S = 0.005  # attack/release so bursts do not click
_AMPLITUDE = 0.3 * 32767


class SyntheticEngine:
    """Tone-burst "speech" at 24 kHz; needs no weights and is thread-safe.

    ``synthesize`` allocates only per call state, so concurrent calls from
    worker threads are safe.
    """

    name = "synthetic"
    sample_rate = 24000

    # voice id -> base pitch in Hz
    _PITCH: Dict[str, float] = {"synth": 220.0, "synth-high": 440.0}

    def voices(self) -> Sequence[LocalVoice]:
        """Return the two synthetic voices (no work done)."""
        return [
            LocalVoice("synth", "Synth", "nonbinary", "Tone bursts, one per word (low)"),
            LocalVoice("synth-high", "Synth High", "nonbinary", "Tone bursts, one per word (high)"),
        ]

    def load(self) -> None:
        """Nothing to load; present for the Engine interface."""

    def synthesize(self, text: str, voice: str) -> Iterator[SpeechChunk]:
        """Yield one chunk per sentence of ``text``.

        Raises:
            KeyError: ``voice`` is not a synthetic voice id.
        """
        if voice not in self._PITCH:
            raise KeyError(f"unknown synthetic voice {voice!r}; choose one of {', '.join(self._PITCH)}")
        base = self._PITCH[voice]
        for sentence in split_sentences(text):
            yield self._sentence(sentence, base)

    def _sentence(self, words: List[str], base_pitch: float) -> SpeechChunk:
        rate = self.sample_rate
        gap = np.zeros(int(_GAP_S * rate), dtype=np.float32)
        pieces: List[np.ndarray] = []
        timings: List[WordTiming] = []
        pos = 0
        for word in words:
            n = int((_WORD_BASE_S + _PER_CHAR_S * len(word)) * rate)
            # crc32 is stable across runs (unlike hash()), so audio is reproducible.
            freq = base_pitch * (1.0 + (zlib.crc32(word.encode()) % 12) / 12.0)
            burst = np.sin(2 * np.pi * freq * np.arange(n, dtype=np.float32) / rate)
            ramp = min(int(_RAMP_S * rate), n // 2)
            envelope = np.ones(n, dtype=np.float32)
            envelope[:ramp] = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
            envelope[n - ramp:] = np.linspace(1.0, 0.0, ramp, dtype=np.float32)
            pieces.append(burst * envelope)
            timings.append(WordTiming(word, pos / rate, n / rate))
            pieces.append(gap)
            pos += n + len(gap)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        pcm = (audio * _AMPLITUDE).astype("<i2").tobytes()
        return SpeechChunk(pcm=pcm, words=timings)
