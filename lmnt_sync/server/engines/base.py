"""The Engine interface every offline voice engine adapter implements.

An engine turns one segment of text into 16-bit mono PCM plus a timing for
every word of that text. Adapters live beside this module, one per engine,
and import their engine package lazily so that listing engines stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Protocol, Sequence

__all__ = ["WordTiming", "SpeechChunk", "LocalVoice", "Engine"]


@dataclass(frozen=True)
class WordTiming:
    """One word of the input and where it sits in the audio, in seconds.

    ``start`` is relative to the start of the ``SpeechChunk`` that carries it.
    """

    text: str
    start: float
    duration: float


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesized speech.

    Attributes:
        pcm: signed 16-bit little-endian mono samples at the engine's rate.
        words: timings of the words this chunk speaks, in order.
    """

    pcm: bytes
    words: List[WordTiming] = field(default_factory=list)


@dataclass(frozen=True)
class LocalVoice:
    """A voice an engine can speak with."""

    id: str
    name: str
    gender: str
    description: str


class Engine(Protocol):
    """A text-to-speech engine.

    Contract: for ``synthesize(text, voice)``, the concatenated ``words`` of
    all chunks are exactly ``text.split()`` (same strings, same order), every
    word once, and their times lie inside the audio they describe.
    """

    name: str
    sample_rate: int

    def voices(self) -> Sequence[LocalVoice]:
        """Return the voices this engine offers (cheap, no model load)."""

    def load(self) -> None:
        """Load model weights now (idempotent); otherwise done on first use."""

    def synthesize(self, text: str, voice: str) -> Iterator[SpeechChunk]:
        """Yield speech for ``text``; blocks while the model runs (CPU-bound).

        Raises:
            KeyError: ``voice`` is not one of ``voices()``.
        """
