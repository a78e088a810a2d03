"""Speech-recognition helpers for tests and benchmarks: is it intelligible?

``pauses_inside_sentences`` finds the silences a listener hears mid-sentence.
``transcribe`` runs pocketsphinx with the US English model bundled in the
``pocketsphinx`` package (no download); ``word_error_rate`` compares texts.
pocketsphinx is a small, old recognizer: a WER of 0.1-0.3 on clear TTS
speech is normal, so bounds built on it must leave that room.
"""
from __future__ import annotations

import re
import threading
from typing import Dict, List

import numpy as np
import soxr

__all__ = ["transcribe", "word_error_rate", "normalize_words", "pauses_inside_sentences"]

_RATE = 16000  # the bundled acoustic model is trained on 16 kHz audio
_decoder = None
_lock = threading.Lock()


def _get_decoder():
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        _decoder = Decoder(loglevel="FATAL")  # default config = bundled en-us model
    return _decoder


def transcribe(pcm: bytes, sample_rate: int) -> str:
    """Return pocketsphinx's transcription of int16 mono ``pcm`` (lower case).

    Blocks for roughly 0.3-1x the audio's duration; serialized by a lock
    because one decoder is shared.

    Raises:
        ValueError: ``sample_rate`` is not positive.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    samples = np.frombuffer(pcm, dtype="<i2")
    if sample_rate != _RATE:
        samples = soxr.resample(samples, sample_rate, _RATE)
    # A little silence on both sides helps the recognizer's endpointing.
    pad = np.zeros(_RATE // 4, dtype=np.int16)
    audio = np.concatenate((pad, samples.astype(np.int16), pad)).tobytes()
    with _lock:
        decoder = _get_decoder()
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    return hyp.hypstr.lower() if hyp is not None else ""


def normalize_words(text: str) -> List[str]:
    """Lower-case words with punctuation removed (apostrophes kept)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words.

    Case and punctuation are ignored. An empty reference gives 0.0 for an
    empty hypothesis and 1.0 otherwise.
    """
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    # Levenshtein distance over words, one row at a time.
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


def pauses_inside_sentences(pcm: bytes, rate: int, stamps: List[dict]) -> Dict[int, float]:
    """Return {word index: seconds of silence after it} for words inside a sentence.

    ``stamps``: API 1.2 timestamps (cumulative) of int16 mono ``pcm``.

    Silence is a run of 10 ms frames 30 dB below the loudest; a run belongs
    to the last word timed to start before it.
    """
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    frame = rate // 100
    blocks = samples[: len(samples) // frame * frame].reshape(-1, frame)
    rms = np.sqrt((blocks * blocks).mean(axis=1))
    quiet = rms < rms.max() * 10 ** (-30 / 20)
    pauses, run = {}, 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run and (i + 1 == len(quiet) or not quiet[i + 1]):
            start = (i + 1 - run) * 0.01
            before = [k for k, w in enumerate(stamps) if w["start"] <= start]
            if before and before[-1] + 1 < len(stamps):  # not the silence at the end
                word = stamps[before[-1]]["text"].rstrip("\"')")
                if not word.endswith((".", "!", "?")):
                    pauses[before[-1]] = max(pauses.get(before[-1], 0.0), run * 0.01)
    return pauses
