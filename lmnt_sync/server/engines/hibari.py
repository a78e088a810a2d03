"""Hibari adapter: the voices bundled in ``hibari-tts`` (24 kHz).

Only voices that ship inside the package are offered; Hibari downloads the
others on first use, which this server must never do.

Word timings are ESTIMATED: Hibari's model predicts spectra per 12.5 ms
frame but exposes no durations. Each sentence's voiced span (leading and
trailing silence trimmed) is shared among its words in proportion to the
number of phonemes Hibari's G2P gives each word alone; a word followed by
clause punctuation also gets the weight of three phonemes for the pause
the model makes there. A word with no phonemes (a lone dash) gets zero
length.

Thread safety: the G2P runs under a lock (it is a few milliseconds per
sentence and not documented as thread-safe); onnxruntime's ``run`` is
thread-safe, and each worker thread has its own random generator for the
noise (created once per thread, not per call: seeding one from the OS was
3.5% of the server's GIL time under load).
Each voice has one onnxruntime session per thread count of the engine's
core budget (:data:`~.cores.CORES` unless given; 1 and all cores, on 2
cores): a sentence runs on the session for the threads the budget grants
it, all cores when nothing else is synthesizing, one each under load (see
``cores.py``); its FFTs get the same number of scipy workers. The sessions
share the model's G2P.
"""
from __future__ import annotations

import copy
import threading
from collections import Counter
from contextlib import nullcontext
from typing import Any, ContextManager, Dict, FrozenSet, Iterator, List, Optional, Sequence

import numpy as np

from . import float_to_pcm, split_sentences, spread_timings, voiced_span
from .base import LocalVoice, SpeechChunk
from .cores import CORES, CoreBudget, session_options

__all__ = ["HibariEngine"]

_STRESS_AND_PUNCT = frozenset("ˈˌ ,.;:!?—…\"“”()'")
_CLAUSE_END = (",", ";", ":", "—", "-")
_PAUSE_WEIGHT = 3.0


class HibariEngine:
    """Hibari TTS with its bundled voices (``heart``: American English, female)."""

    name = "hibari"
    sample_rate = 24000

    def __init__(self, budget: Optional[CoreBudget] = None) -> None:
        self._budget = budget or CORES  # whom sentences claim cores from
        self._models: Dict[str, Dict[int, Any]] = {}  # voice id -> threads -> hibari.Hibari (untyped)
        self.runs: Counter[int] = Counter()  # intra-op threads of the session -> sentences run on it
        self._runs_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._g2p_lock = threading.Lock()
        self._local = threading.local()  # .rng: this thread's noise generator
        self._voice_ids: Optional[FrozenSet[str]] = None  # bundled voices, read once

    def voices(self) -> Sequence[LocalVoice]:
        """Return the bundled voices (reads Hibari's registry; no model load)."""
        from hibari.voices import VOICES

        return [
            LocalVoice(
                name,
                name.capitalize(),
                info["gender"],
                f"{info['accent']} English ({info['language']}), Hibari",
            )
            for name, info in VOICES.items()
            if info.get("bundled")
        ]

    def load(self) -> None:
        """Load every bundled voice and the G2P (idempotent, thread-safe).

        Raises:
            ImportError: hibari-tts is missing.
        """
        for voice in self.voices():
            self._model(voice.id)

    def synthesize(self, text: str, voice: str) -> Iterator[SpeechChunk]:
        """Yield one chunk per sentence of ``text``; blocks on the model.

        Raises:
            KeyError: ``voice`` is not a bundled Hibari voice.
        """
        ids = self._voice_ids
        if ids is None:
            ids = self._voice_ids = frozenset(v.id for v in self.voices())
        if voice not in ids:
            raise KeyError(f"unknown hibari voice {voice!r}; choose one of {', '.join(sorted(ids))}")
        models = self._model(voice)
        for words in split_sentences(text):
            # Looked up per sentence: a caller may step this generator from
            # different threads, and a Generator must not be shared by two.
            yield self._sentence(models, words, self._rng())

    def _rng(self) -> np.random.Generator:
        """Return the calling thread's noise generator (seeded from the OS once)."""
        rng = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = np.random.default_rng()
        return rng

    def _model(self, voice: str) -> Dict[int, Any]:
        """Return ``{intra-op threads: hibari.Hibari}`` for ``voice``, loading it once."""
        with self._load_lock:
            models = self._models.get(voice)
            if models is None:
                from hibari import Hibari
                from onnxruntime import InferenceSession

                model = Hibari(voice=voice, threads=1)
                model.g2p("Warm up.")  # loads the lexicon now, not mid-request
                model.g2p.oov  # noqa: B018 - loads the OOV net now, not lazily in a race
                models = {1: model}
                for threads in self._budget.widths[1:]:
                    wide = models[threads] = copy.copy(model)  # shares vocab and G2P
                    wide.sess = InferenceSession(model.model_path, session_options(threads),
                                                 providers=["CPUExecutionProvider"])
                self._models[voice] = models
            return models

    def _sentence(self, models: Dict[int, Any], words: List[str],
                  rng: np.random.Generator) -> SpeechChunk:
        model = models[1]
        with self._g2p_lock:
            chunks = model.phonemize(" ".join(words))
            weights = [_weight(model.g2p(w), w, i == len(words) - 1) for i, w in enumerate(words)]
        with self._budget.claim() as threads:
            model = models[threads]
            with _fft_workers(threads):
                parts = [model.from_ids(model.ids(ps), 1.0, rng) for ps in chunks]
        with self._runs_lock:
            self.runs[threads] += 1
        parts = [p for p in parts if len(p)]
        if not parts:  # nothing speakable (e.g. only symbols): a short silence
            parts.append(np.zeros(self.sample_rate // 10, np.float32))
        audio = np.concatenate(parts)
        start, end = voiced_span(audio, self.sample_rate)
        return SpeechChunk(pcm=float_to_pcm(audio), words=spread_timings(words, weights, start, end))


def _fft_workers(threads: int) -> ContextManager[Any]:
    """Let Hibari's scipy FFTs in this thread use ``threads`` workers (a no-op for one)."""
    if threads == 1:
        return nullcontext()
    try:
        from scipy.fft import set_workers
    except ImportError:  # Hibari then uses numpy's FFT, which has no workers
        return nullcontext()
    workers: ContextManager[Any] = set_workers(threads)
    return workers


def _weight(phonemes: str, word: str, last: bool) -> float:
    """Phoneme count of a word, plus a pause weight after clause punctuation."""
    weight = float(sum(1 for c in phonemes if c not in _STRESS_AND_PUNCT))
    if weight and not last and word.rstrip("\"')]”’").endswith(_CLAUSE_END):
        weight += _PAUSE_WEIGHT
    return weight
