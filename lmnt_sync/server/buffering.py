"""When streamed text becomes a segment to speak: pure rules, no I/O.

A websocket client sends text in arbitrary pieces (even mid-word). LMNT's
server buffers that text until it has enough context to speak it well, and
this module reproduces that behaviour for the local server:

* Pieces are concatenated with no separator (``"Hel" + "lo "`` is
  ``"Hello "``); only text up to a whitespace can leave the buffer, so a word
  is never cut.
* A *sentence end* is ``.``, ``!``, ``?`` or ``…`` (optionally followed by
  closing quotes or brackets) **followed by whitespace**. Every complete
  sentence is released as soon as its trailing whitespace arrives. Without
  the whitespace we cannot know whether ``3.`` continues as ``3.14``.
* The *first* segment of a turn starts early, to keep the time to first
  audio low: at a clause boundary (``,`` ``;`` ``:`` or a dash followed by
  whitespace) once it holds ``first_clause_words`` words, or after
  ``first_max_words`` complete words even without any boundary. A turn
  starts with the session and again after every flush or reset.
* Later segments wait for a sentence end, but a run-on text without one is
  cut once ``max_words`` complete words are buffered (at the last clause
  boundary if there is one), so memory and latency stay bounded.
* ``flush`` and ``finish`` release everything buffered at once; ``reset``
  drops it.

Example::

    >>> buf = TextBuffer()
    >>> buf.push("Hello there, how are")
    []
    >>> buf.push(" you? I am")
    ['Hello there, how are you?']
    >>> buf.flush()
    ['I am']
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

__all__ = ["BufferRules", "TextBuffer"]

# Closing quotes/brackets may follow the sentence mark: `He said "no." Then`.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s")
_CLAUSE_END = re.compile(r"(?:[,;:]|\s[-\u2013\u2014])[\"'\u201d\u2019)\]]*\s")
_WORD_END = re.compile(r"\S\s")


@dataclass(frozen=True)
class BufferRules:
    """Thresholds for :class:`TextBuffer` (counts of complete words).

    Attributes:
        first_clause_words: the first segment of a turn may end at a clause
            boundary once it has at least this many words.
        first_max_words: the first segment of a turn is released after this
            many words even without any boundary.
        max_words: any later run-on segment is cut after this many words.
    """

    first_clause_words: int = 3
    first_max_words: int = 8
    max_words: int = 40


class TextBuffer:
    """Text received but not yet handed to the speech engine.

    Not thread-safe: one session's event-loop task owns it. Every method is
    non-blocking and returns the segments (stripped, non-empty strings) that
    became ready, in speaking order.
    """

    def __init__(self, rules: Optional[BufferRules] = None) -> None:
        """Create an empty buffer at the start of a turn."""
        self._rules = rules or BufferRules()
        self._text = ""
        self._turn_started = False

    @property
    def pending_chars(self) -> int:
        """Return how many characters are buffered (whitespace included)."""
        return len(self._text)

    @property
    def is_empty(self) -> bool:
        """Return True when nothing speakable is buffered."""
        return not self._text.strip()

    def push(self, text: str) -> List[str]:
        """Append ``text`` verbatim and return the segments now ready."""
        self._text += text
        segments: List[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return segments
            segment, self._text = self._text[:cut].strip(), self._text[cut:]
            if segment:
                segments.append(segment)
                self._turn_started = True

    def flush(self) -> List[str]:
        """Release everything buffered as one segment and start a new turn."""
        segment, self._text = self._text.strip(), ""
        self._turn_started = False
        return [segment] if segment else []

    def reset(self) -> None:
        """Drop everything buffered and start a new turn."""
        self._text = ""
        self._turn_started = False

    def _next_cut(self) -> Optional[int]:
        """Return the end index of the next ready segment, or None."""
        sentence = _SENTENCE_END.search(self._text)
        if not self._turn_started:
            early = self._early_cut(sentence.end() if sentence else len(self._text))
            if early is not None:
                return early
        if sentence:
            return sentence.end()
        return self._run_on_cut(self._rules.max_words, prefer_clause=True)

    def _early_cut(self, limit: int) -> Optional[int]:
        """Return a cut before ``limit`` for the first segment of a turn."""
        rules = self._rules
        for clause in _CLAUSE_END.finditer(self._text, 0, limit):
            if _count_words(self._text[: clause.end()]) >= rules.first_clause_words:
                return clause.end()
        return self._run_on_cut(rules.first_max_words, limit=limit)

    def _run_on_cut(
        self, words: int, *, limit: Optional[int] = None, prefer_clause: bool = False
    ) -> Optional[int]:
        """Return the cut after ``words`` complete words (before ``limit``)."""
        end = len(self._text) if limit is None else limit
        ends = [m.end() for m in _WORD_END.finditer(self._text, 0, end)]
        if len(ends) < words:
            return None
        cut = ends[words - 1]
        if prefer_clause:
            # A natural pause sounds better than an arbitrary word boundary.
            clauses = [m.end() for m in _CLAUSE_END.finditer(self._text, 0, cut)]
            cut = clauses[-1] if clauses else cut
        return cut


def _count_words(text: str) -> int:
    """Return the number of whitespace-separated words in ``text``."""
    return len(text.split())
