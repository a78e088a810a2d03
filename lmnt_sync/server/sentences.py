"""The one sentence splitter of the server: REST, streaming and the engines.

Sentence boundaries come from pysbd (rule-based, English), which knows
abbreviations ("Dr. Patel", "e.g. type"), initials ("J. R. R. Tolkien"),
decimals ("3.50"), times ("5 p.m. if") and ellipses. BENCHMARKS.md
"## Sentence splitting" compares it with the regex splitter it replaced.

Two questions are answered here:

* :func:`split_words`: where does a whole text break into sentences (the
  engines speak one sentence at a time)? The answer keeps the words exactly
  (``sum(result, []) == text.split()``), which the engine contract needs.
* :func:`complete_sentences`: in text that is still arriving, which
  sentence ends are certain? A sentence followed by more text is certain
  (pysbd saw its context). The *last* one is certain only when its mark is
  followed by whitespace and the word before it cannot be an abbreviation,
  an initial or an ellipsis (``"at 5 p.m. "`` may go on with ``"if"``); those
  wait for the next word or a flush.

Pure functions; pysbd's ``Segmenter`` is created once per thread (its
``segment`` keeps per-call state on the instance).
"""
from __future__ import annotations

import re
import threading
from typing import Any, FrozenSet, List

__all__ = ["split_words", "complete_sentences", "sentence_spans", "ends_sentence"]

_local = threading.local()

# A sentence mark, then closing quotes or brackets, at the end of a word.
_MARK_AT_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_CLOSERS = "\"'\u201d\u2019)]"
_MARK_THEN_SPACE = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+")
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+$")  # "J." "e.g." "p.m." "U.S."


def _segmenter() -> Any:  # a pysbd.Segmenter (pysbd has no type information)
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        import pysbd  # imported lazily: only the server needs it

        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return seg


def _abbreviations() -> FrozenSet[str]:
    abbr = getattr(_abbreviations, "cache", None)
    if abbr is None:
        from pysbd.lang.english import English

        abbr = frozenset(English.Abbreviation.ABBREVIATIONS)
        _abbreviations.cache = abbr  # type: ignore[attr-defined]
    return abbr


def sentence_spans(text: str) -> List[int]:
    """Return the end offset of every sentence pysbd finds in ``text``.

    An end offset points just after the sentence's mark and closers (its
    trailing whitespace belongs to the gap). The last entry is ``len`` of the
    text without trailing whitespace. Blocks for pysbd (~1 ms per 60 chars).
    """
    if not text.strip():
        return []
    ends: List[int] = []
    for span in _segmenter().segment(text):
        end = span.end
        while end > span.start and text[end - 1].isspace():
            end -= 1
        if end > (ends[-1] if ends else 0):
            ends.append(end)
    stripped = len(text.rstrip())
    if not ends or ends[-1] != stripped:
        ends = [e for e in ends if e < stripped] + [stripped]
    return ends


def ends_sentence(word: str) -> bool:
    """Return True when ``word`` surely ends a sentence if followed by a space.

    False for no mark, an ellipsis, an initial, dotted letters ("p.m.") or a
    known abbreviation ("Dr."): those depend on the next word.
    """
    if not _MARK_AT_END.search(word):
        return False
    bare = word.rstrip(_CLOSERS)
    if bare.endswith(("!", "?")):
        return True
    if bare.endswith(("...", "\u2026")):
        return False
    core = bare.lstrip("\"'(\u201c\u2018[")
    if _DOTTED.match(core):
        return False
    return core[:-1].lower() not in _abbreviations()


def complete_sentences(text: str) -> List[int]:
    """Return cut offsets after each sentence of ``text`` that is surely over.

    ``text`` is a stream buffer (it may end mid-word). A cut offset lies just
    after the whitespace that follows a sentence, so ``text[:cut]`` holds
    whole sentences. Every sentence pysbd closes before later text is
    complete; the last one also when :func:`ends_sentence` says so of its last
    word and whitespace follows it.
    """
    marks = list(_MARK_THEN_SPACE.finditer(text))
    if not marks:
        return []  # no sentence mark followed by whitespace: nothing can be over
    if len(marks) == 1 and not any(c.isspace() for c in text[marks[0].end():]):
        # One mark, followed by at most part of a word (text streaming in
        # sentence by sentence): too little context for pysbd to add anything
        # to the word's own evidence; skip its ~1 ms.
        return [marks[0].end()] if ends_sentence(text[:marks[0].end()].split()[-1]) else []
    ends = sentence_spans(text)
    cuts: List[int] = []
    tail = len(text.rstrip())
    for end in ends:
        after = end
        while after < len(text) and text[after].isspace():
            after += 1
        if after == end:
            continue  # no whitespace after the mark yet ("3." may become "3.14")
        if end == tail:
            last_word = text[:end].split()[-1]
            if not ends_sentence(last_word):
                continue
        if not _MARK_AT_END.search(text[:end].split()[-1]):
            continue  # pysbd closed a sentence without a mark (a line break): not ours to cut
        cuts.append(after)
    return cuts


def split_words(words: List[str], max_words: int = 30) -> List[List[str]]:
    """Split ``words`` into sentences of at most ``max_words`` words.

    The concatenation of the returned lists is exactly ``words``. Long
    sentences are cut so the first audio of a long run-on text comes early.
    """
    if not words:
        return []
    text = " ".join(words)
    starts: List[int] = []
    pos = 0
    for word in words:
        starts.append(pos)
        pos += len(word) + 1
    # Word index where each sentence ends (exclusive), from pysbd's offsets.
    bounds: List[int] = []
    i = 0
    for end in sentence_spans(text):
        while i < len(words) and starts[i] < end:
            i += 1
        if i and (not bounds or i > bounds[-1]):
            bounds.append(i)
    if not bounds or bounds[-1] != len(words):
        bounds.append(len(words))
    sentences: List[List[str]] = []
    begin = 0
    for bound in bounds:
        while bound - begin > max_words:
            sentences.append(words[begin:begin + max_words])
            begin += max_words
        if bound > begin:
            sentences.append(words[begin:bound])
            begin = bound
    return sentences
