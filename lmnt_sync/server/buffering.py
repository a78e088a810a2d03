"""When streamed text becomes a segment to speak: pure rules, no I/O.

A websocket client sends text in arbitrary pieces (even mid-word). LMNT's
server buffers that text until it has enough context to speak it well, and
this module reproduces that behaviour for the local server:

* Pieces are concatenated with no separator (``"Hel" + "lo "`` is
  ``"Hello "``); only text up to a whitespace can leave the buffer, so a word
  is never cut.
* A *sentence end* is decided by the server's one splitter
  (:func:`.sentences.complete_sentences`, pysbd): a sentence is released
  once text after it shows that it is over, or at once when its mark is
  followed by whitespace and cannot be an abbreviation, initial, ``a.m.``
  or ellipsis (``"Dr. "`` waits for the next word; ``"done. "`` does not).
* The *first* segment of a turn starts early, to keep the time to first
  audio low, but only where speech pauses anyway: at a clause boundary
  (``,`` ``;`` ``:`` or a dash followed by whitespace) once it holds
  ``first_clause_words`` words, or before a word that starts a phrase
  (``and``, ``because``, ``which``, ...) once it holds ``first_phrase_words``
  words. When the client stops sending for
  ``idle_seconds`` with at least ``idle_words`` complete words buffered and
  the turn not started, :meth:`TextBuffer.idle` releases them (the session
  calls it from a timer): a slow producer still gets audio soon, and a fast
  one is never cut mid-phrase. A turn starts with the session and again
  after every flush or reset. BENCHMARKS.md "## Streaming segments" has the
  figures behind these thresholds.
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

from .sentences import complete_sentences

__all__ = ["BufferRules", "TextBuffer"]

_CLAUSE_END = re.compile(r"(?:[,;:]|\s[-\u2013\u2014])[\"'\u201d\u2019)\]]*\s")
_WORD_END = re.compile(r"\S\s")
_WORD = re.compile(r"\S+(?=\s)")  # a complete word
# Words a phrase starts with, before which speech pauses anyway (a boundary
# the voice marks without punctuation): conjunctions and relative words.
_PHRASE_STARTS = frozenset(
    [
        "and", "but", "or", "so", "because", "when", "while", "which", "who", "whose", "where", "if",
        "unless", "until", "before", "after", "although", "though", "whereas", "except", "since",
    ]
)


@dataclass(frozen=True)
class BufferRules:
    """Thresholds for :class:`TextBuffer` (counts of complete words).

    Attributes:
        first_clause_words: the first segment of a turn may end at a clause
            boundary once it has at least this many words.
        first_phrase_words: the first segment of a turn may end before a
            phrase-starting word ("and", "because", "which", ...) once it has
            at least this many words.
        idle_words: :meth:`TextBuffer.idle` releases the first segment of a
            turn only when at least this many complete words wait.
        idle_seconds: how long the client must send nothing before the
            session calls :meth:`TextBuffer.idle` (read by the session).
        max_words: any run-on segment is cut after this many words.
    """

    first_clause_words: int = 3
    first_phrase_words: int = 6
    idle_words: int = 4
    idle_seconds: float = 0.25
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
        """Append ``text`` verbatim and return the segments now ready.

        Runs the sentence splitter once over the buffer (about 1 ms per 60
        characters held), only when ``text`` holds whitespace and a sentence
        mark is followed by whitespace.
        """
        self._text += text
        if not any(c.isspace() for c in text):
            return []  # every cut ends at whitespace: none can be new
        segments: List[str] = []
        cuts = complete_sentences(self._text)
        if not self._turn_started:
            early = self._early_cut(cuts[0] if cuts else len(self._text))
            if early is not None:
                segments.extend(self._release(early))
                cuts = [c - early for c in cuts if c > early]
        done = 0
        for cut in cuts:
            segments.extend(self._release(cut - done))
            done = cut
        while True:
            run_cut = self._run_on_cut(self._rules.max_words, prefer_clause=True)
            if run_cut is None:
                return segments
            segments.extend(self._release(run_cut))

    def flush(self) -> List[str]:
        """Release everything buffered as one segment and start a new turn."""
        segment, self._text = self._text.strip(), ""
        self._turn_started = False
        return [segment] if segment else []

    def reset(self) -> None:
        """Drop everything buffered and start a new turn."""
        self._text = ""
        self._turn_started = False

    @property
    def rules(self) -> BufferRules:
        """Return the thresholds in force."""
        return self._rules

    @property
    def waiting_for_start(self) -> bool:
        """Return True when the turn has not started and text is buffered."""
        return not self._turn_started and not self.is_empty

    def idle(self) -> List[str]:
        """Release the first segment of a turn after the client went quiet.

        Returns the complete words buffered (up to the last whitespace) as
        one segment when the turn has not started and they are at least
        ``idle_words``; otherwise nothing.
        """
        if self._turn_started:
            return []
        cut = self._run_on_cut(self._rules.idle_words)
        if cut is None:
            return []
        ends = [m.end() for m in _WORD_END.finditer(self._text)]
        return self._release(ends[-1])

    def _release(self, cut: int) -> List[str]:
        segment, self._text = self._text[:cut].strip(), self._text[cut:]
        if not segment:
            return []
        self._turn_started = True
        return [segment]

    def _early_cut(self, limit: int) -> Optional[int]:
        """Return a cut before ``limit`` for the first segment of a turn.

        After a clause mark once ``first_clause_words`` words are in, or
        before a phrase-starting word ("and", "because", "which", ...) once
        ``first_phrase_words`` words are, whichever comes first.
        """
        rules = self._rules
        clause_cut = None
        for clause in _CLAUSE_END.finditer(self._text, 0, limit):
            if _count_words(self._text[: clause.end()]) >= rules.first_clause_words:
                clause_cut = clause.end()
                break
        for count, word in enumerate(_WORD.finditer(self._text, 0, limit)):
            if clause_cut is not None and word.start() >= clause_cut:
                break
            if count >= rules.first_phrase_words and word[0].lower() in _PHRASE_STARTS:
                return word.start()
        return clause_cut

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
