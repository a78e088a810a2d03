"""Joins inside a sentence sound like one utterance: trim engine padding.

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
"## Streaming segments"). Word timings move with the audio. Pure; numpy
only.
"""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, List

import numpy as np

from .engines import voiced_span
from .engines.base import SpeechChunk, WordTiming

__all__ = ["join_chunks", "PAUSES", "pause_after", "has_sentence_mark"]

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
                continues: bool = False) -> Iterator[SpeechChunk]:
    """Yield ``chunks`` with the padding at mid-sentence joins trimmed.

    ``continues``: the first chunk carries on a sentence an earlier piece
    of text began. Blocks only as long as iterating ``chunks`` does.
    """
    if engine not in PAUSES:
        yield from chunks
        return
    for chunk in chunks:
        if not chunk.words:
            yield chunk
            continue
        open_end = not has_sentence_mark(chunk.words[-1].text)
        if continues or open_end:
            chunk = _trim(chunk, engine, sample_rate, continues, open_end)
        yield chunk
        continues = open_end


def has_sentence_mark(word: str) -> bool:
    """True for a word ending in a sentence mark (``end.`` ``Dr.`` ``"why?"``).

    A piece of text that ends in one is spoken as a sentence end, even when
    the mark only *may* end it: the one-piece rendering's splitter cut there
    too, or the speaker was flushed there.
    """
    return word.rstrip("\"')]\u201d\u2019").endswith((".", "!", "?", "\u2026"))


def _trim(chunk: SpeechChunk, engine: str, rate: int, lead: bool, tail: bool) -> SpeechChunk:
    samples = np.frombuffer(chunk.pcm, dtype="<i2")
    voiced_start, voiced_end = voiced_span(samples, rate)
    start = max(0.0, voiced_start - _LEAD) if lead else 0.0
    end = len(samples) / rate
    if tail:
        end = min(end, voiced_end + pause_after(engine, chunk.words[-1].text))
    first, last = int(round(start * rate)), int(round(end * rate))
    if last <= first:
        return chunk
    length = (last - first) / rate
    words: List[WordTiming] = []
    for word in chunk.words:
        begin = min(max(word.start - start, 0.0), length)
        words.append(WordTiming(word.text, begin, max(0.0, min(word.duration, length - begin))))
    return SpeechChunk(samples[first:last].tobytes(), words)
