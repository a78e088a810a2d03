"""Offline voice engines and a process-wide registry of them.

Engines are looked up by name with :func:`get_engine`; each adapter module is
imported only when first asked for, so listing names costs nothing and a
missing optional engine package only fails for whoever asks for that engine.

This module also holds the text helpers the adapters share
(:func:`split_sentences`, :func:`spread_timings`), kept here rather than in
``base.py`` so the interface module stays a pure contract.
"""
from __future__ import annotations

import importlib
import threading
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .base import Engine, LocalVoice, SpeechChunk, WordTiming

__all__ = [
    "Engine",
    "LocalVoice",
    "SpeechChunk",
    "WordTiming",
    "DEFAULT_ENGINE",
    "engine_names",
    "get_engine",
    "all_voices",
    "split_sentences",
    "spread_timings",
    "voiced_span",
    "frame_rms",
    "float_to_pcm",
]

#: Engine used when the caller names none; chosen from the figures in
#: BENCHMARKS.md "## Engines" (see the reasoning there).
DEFAULT_ENGINE = "hibari"

# name -> (module, class); modules are imported lazily by get_engine().
_REGISTRY: Dict[str, Tuple[str, str]] = {
    "piper": (".piper", "PiperEngine"),
    "hibari": (".hibari", "HibariEngine"),
    "synthetic": (".synthetic", "SyntheticEngine"),
}

_instances: Dict[str, Engine] = {}
_lock = threading.Lock()


def engine_names() -> List[str]:
    """Return the names :func:`get_engine` accepts (no imports happen)."""
    return list(_REGISTRY)


def get_engine(name: str) -> Engine:
    """Return the process-wide instance of engine ``name``, creating it once.

    Thread-safe. Creating an engine imports its adapter but does not load
    model weights (call ``load()`` for that, or let the first synthesis do it).

    Raises:
        ValueError: ``name`` is not one of :func:`engine_names`.
        ImportError: the engine's package is not installed.
    """
    try:
        module_name, class_name = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown engine {name!r}; choose one of {', '.join(_REGISTRY)}"
        ) from None
    with _lock:
        engine = _instances.get(name)
        if engine is None:
            module = importlib.import_module(module_name, __name__)
            engine = getattr(module, class_name)()
            _instances[name] = engine
        return engine


def all_voices(names: Sequence[str] = ()) -> List[Tuple[str, LocalVoice]]:
    """List ``(engine name, voice)`` for the given engines (default: all).

    Engines whose package cannot be imported are skipped, so a partial
    install still lists what it can.

    Raises:
        ValueError: a name in ``names`` is unknown.
    """
    result: List[Tuple[str, LocalVoice]] = []
    for name in names or engine_names():
        try:
            engine = get_engine(name)
        except ImportError:
            continue
        result.extend((name, voice) for voice in engine.voices())
    return result


def split_sentences(text: str, max_words: int = 30) -> List[List[str]]:
    """Split ``text.split()`` into sentences of at most ``max_words`` words.

    The concatenation of the returned lists is exactly ``text.split()``,
    which is what lets adapters keep the engine word contract. The server's
    one splitter (:func:`lmnt_sync.server.sentences.split_words`) decides.
    """
    from ..sentences import split_words

    return split_words(text.split(), max_words)


def voiced_span(samples: np.ndarray, sample_rate: int) -> Tuple[float, float]:
    """Return ``(start, end)`` in seconds of the non-silent part of ``samples``.

    Silence is any 10 ms frame whose RMS is 30 dB below the loudest frame;
    engines pad sentences with silence that no word should be timed over.
    Returns ``(0, length)`` for audio that is all silence.
    """
    n = len(samples)
    frame = max(1, sample_rate // 100)
    rms = frame_rms(samples, frame)
    if len(rms) == 0:
        return 0.0, n / sample_rate
    loud = np.nonzero(rms > rms.max() * 10 ** (-30 / 20))[0]
    if len(loud) == 0 or rms.max() == 0:
        return 0.0, n / sample_rate
    return float(loud[0] * frame / sample_rate), float(min(n, (loud[-1] + 1) * frame) / sample_rate)


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each whole ``frame``-sample frame of ``samples`` (a trailing partial frame is left out)."""
    frames = len(samples) // frame
    blocks = samples[: frames * frame].astype(np.float32).reshape(frames, frame)
    rms: np.ndarray = np.sqrt(np.mean(blocks * blocks, axis=1)) if frames else np.zeros(0, np.float32)
    return rms


def float_to_pcm(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to signed 16-bit little-endian bytes (clipped)."""
    pcm: np.ndarray = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    return pcm.tobytes()


def spread_timings(
    words: Sequence[str],
    weights: Sequence[float],
    start: float,
    end: float,
    offset: float = 0.0,
) -> List[WordTiming]:
    """Share the span ``[start, end)`` among ``words`` in proportion to weights.

    Used where an engine gives no alignment: each word gets a slice of the
    voiced span proportional to its weight (phonemes or characters). Times
    are shifted by ``offset`` (the chunk-relative position of the span).

    Raises:
        ValueError: ``words`` and ``weights`` differ in length.
    """
    if len(words) != len(weights):
        raise ValueError(f"{len(words)} words but {len(weights)} weights")
    clean = [max(float(w), 0.0) for w in weights]
    if sum(clean) <= 0.0:
        clean = [1.0] * len(words)  # no usable weights: share evenly
    total = sum(clean)
    span = max(end - start, 0.0)
    timings: List[WordTiming] = []
    t = start
    for word, weight in zip(words, clean):
        share = span * weight / total
        timings.append(WordTiming(word, offset + t, share))
        t += share
    return timings
