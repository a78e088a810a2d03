"""Engine padding trimmed where it makes a listener wait: mid-sentence joins, turn starts.

Engines speak one piece of text at a time and pad every piece with silence
(hibari: ~0.3 s before and ~0.45 s after; piper: ~0.05 s and ~0.2 s).
Between two sentences that matches what the one-piece rendering does (the
engines speak sentence by sentence anyway), but where the server had to cut
*inside* a sentence (a streamed turn's early first segment, a run-on cut)
the padding made a pause of 0.5-0.8 s that the whole text never has.

:func:`join_chunks` wraps an engine's chunks for one piece of text: a chunk
that continues a sentence loses its leading silence, and a chunk that stops
mid-sentence keeps only the pause its last punctuation calls for in that
engine's one-piece rendering (:data:`PAUSES`, measured: BENCHMARKS.md
"## Streaming segments").

The first chunk of a *turn* (a session's first audio, the first after a
flush or reset, a REST response) starts :data:`ONSET_LEAD` before its first
sound instead: the listener is waiting, and hibari's ~0.28 s lead-in was
most of what they heard of the server's latency. The first sound is found
with a threshold well below the one :func:`~.engines.voiced_span` uses, so
quiet onsets ("th", "h", "f") are kept whole; an engine that starts
sounding at once (piper does, for some words) gets that much silence put in
front, so every turn begins with a quiet frame. Word timings move with the
audio. Pure; numpy only.
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np

from .engines import frame_rms, voiced_span
from .engines.base import SpeechChunk, WordTiming

__all__ = ["join_chunks", "PAUSES", "ONSET_LEAD", "pause_after", "has_sentence_mark", "first_sound"]

#: Seconds of silence after a word inside a sentence, by engine: ``clause``
#: after ``, ; : -`` (or a dash word), ``word`` after any other word: the
#: median pause of the engines' one-piece renderings (26-28 clause pauses
#: over 7 texts each: hibari 0.06/0.25/0.42 s at the 10th/50th/90th
#: percentile, piper 0.09/0.31/0.40 s), less the 10 ms kept before the next
#: piece's first sound. Engines not
#: listed (the synthetic test tone) are passed through untouched.
PAUSES: Dict[str, Dict[str, float]] = {
    "hibari": {"clause": 0.24, "word": 0.03},
    "piper": {"clause": 0.30, "word": 0.05},
}
_LEAD = 0.01  # seconds kept before a continuing chunk's first sound: no click
#: Seconds of quiet before a turn's first sound: the onset rises from
#: silence, as in a recording, and costs the listener next to nothing.
ONSET_LEAD = 0.02
_ONSET_DB = -50.0  # a 5 ms frame this close to the loudest is sound (hibari's "th" starts ~40 dB down)
_ONSET_FRAME = 0.005
_CLAUSE_MARKS = (",", ";", ":", "-", "\u2013", "\u2014")


def pause_after(engine: str, word: str) -> float:
    """Return the pause ``engine`` makes after ``word`` inside a sentence.

    Raises:
        KeyError: ``engine`` is not in :data:`PAUSES`.
    """
    pauses = PAUSES[engine]
    bare = word.rstrip("\"')]\u201d\u2019")
    return pauses["clause"] if bare.endswith(_CLAUSE_MARKS) else pauses["word"]


def join_chunks(chunks: Iterable[SpeechChunk], engine: str, sample_rate: int,
                continues: bool = False, opens_turn: bool = False) -> Iterator[SpeechChunk]:
    """Yield ``chunks`` with the padding at mid-sentence joins and a turn's start trimmed.

    ``continues``: the first chunk carries on a sentence an earlier piece
    of text began. ``opens_turn``: the first chunk is the first audio of a
    turn (it starts :data:`ONSET_LEAD` before its first sound). Blocks only
    as long as iterating ``chunks`` does.
    """
    if engine not in PAUSES:
        yield from chunks
        return
    for chunk in chunks:
        if not chunk.words:
            yield chunk
            continue
        open_end = not has_sentence_mark(chunk.words[-1].text)
        if continues or open_end or opens_turn:
            chunk = _trim(chunk, engine, sample_rate, _start(chunk, sample_rate, continues, opens_turn), open_end)
        yield chunk
        continues, opens_turn = open_end, False


def has_sentence_mark(word: str) -> bool:
    """True for a word ending in a sentence mark (``end.`` ``Dr.`` ``"why?"``).

    A piece of text that ends in one is spoken as a sentence end, even when
    the mark only *may* end it: the one-piece rendering's splitter cut there
    too, or the speaker was flushed there.
    """
    return word.rstrip("\"')]\u201d\u2019").endswith((".", "!", "?", "\u2026"))


def first_sound(samples: np.ndarray, rate: int) -> Optional[float]:
    """Return where the first 5 ms frame within 50 dB of the loudest begins (seconds).

    None for audio that is all silence (or shorter than a frame).
    """
    hop = max(1, int(rate * _ONSET_FRAME))
    rms = frame_rms(samples, hop)
    if len(rms) == 0 or rms.max() == 0:
        return None
    return float(np.argmax(rms > rms.max() * 10 ** (_ONSET_DB / 20)) * hop / rate)


def _start(chunk: SpeechChunk, rate: int, continues: bool, opens_turn: bool) -> float:
    """Where a chunk's kept audio begins, seconds; negative: that much silence goes in front."""
    samples = np.frombuffer(chunk.pcm, dtype="<i2")
    if opens_turn:
        sound = first_sound(samples, rate)
        return 0.0 if sound is None else sound - ONSET_LEAD
    if continues:
        return max(0.0, voiced_span(samples, rate)[0] - _LEAD)
    return 0.0


def _trim(chunk: SpeechChunk, engine: str, rate: int, start: float, tail: bool) -> SpeechChunk:
    samples = np.frombuffer(chunk.pcm, dtype="<i2")
    end = len(samples) / rate
    if tail:
        end = min(end, voiced_span(samples, rate)[1] + pause_after(engine, chunk.words[-1].text))
    first, last = int(round(start * rate)), int(round(end * rate))
    if last <= first:
        return chunk
    start = first / rate  # timings move by exactly the samples cut or put in front
    if first < 0:
        samples, last, first = np.concatenate((np.zeros(-first, samples.dtype), samples)), last - first, 0
    length = (last - first) / rate
    words: List[WordTiming] = []
    for word in chunk.words:
        begin = min(max(word.start - start, 0.0), length)
        words.append(WordTiming(word.text, begin, max(0.0, min(word.duration, length - begin))))
    return SpeechChunk(samples[first:last].tobytes(), words)
