"""Sentence splitters compared: wrong cuts and missed ends on hard cases, and speed.

Run from the repository root (a few seconds; prints Markdown):

    python bench/sentence_split.py [--baseline-rev e4ede77]

Candidates:

* ``stream buffer (before)``: the streaming TextBuffer's old rule, a
  sentence mark followed by whitespace (from ``--baseline-rev``);
* ``engine regex (before)``: the engines' old ``split_sentences`` (a short
  abbreviation list, single initials, a lowercase next word continues);
* ``pysbd (now)``: :func:`lmnt_sync.server.sentences.split_words`, used by
  the engines, REST and (for completed sentences) the stream buffer.

The cases are sentences that put the rules to the test: titles,
abbreviations, initials, decimals, times, ellipses, quotes; ``|`` marks
each true sentence end. A *wrong cut* splits where no sentence ends (the
voice then speaks two pieces); a *missed end* joins two sentences.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from typing import Callable, Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lmnt_sync.server.buffering  # noqa: E402,F401 - measured below
from lmnt_sync.server.sentences import split_words  # noqa: E402

BEFORE = "e4ede77"
PROSE = ("The library opens at nine in the morning and closes at six in the evening. Visitors can "
         "borrow up to five books at a time. Children under twelve need a parent with them. The "
         "reading room on the second floor is quiet, and phones must be switched off there. Coffee "
         "is not allowed near the shelves. If you lose a book, please tell the front desk. ") * 3
CASES = [
    "I met Dr. Patel at the clinic. | She was kind. |",
    "Mr. Lee and Mrs. Park arrived late. | The show had started. |",
    "Pick a cable, e.g. type A or type B. | Then plug it in. |",
    "We meet at 5 p.m. if it is dry. | Bring a coat. |",
    "The shop closes at 5 p.m. | Come early. |",
    "J. R. R. Tolkien wrote the book. | It is long. |",
    "It costs 3.50 dollars today. | Tomorrow it is 4.25 dollars. |",
    "Wait... what did you say? | Nothing! |",
    "Well... I am not sure about that. |",
    'He said "stop." | Then he left. |',
    '"Yes!" she said. | We laughed. |',
    "They live in St. Louis near the river. | It floods. |",
    "The U.S. economy grew last year. | Prices rose. |",
    "Python 3.10 fixed it. | Upgrade now. |",
    "Call me at 10 a.m. tomorrow. | I will wait. |",
    "Prof. Smith vs. Dr. Jones was a famous debate. |",
    "See Fig. 3 for the results. | They are clear. |",
    "The meeting is at No. 5 Main St. today. | Do not be late. |",
    "It was approx. 30 km away. | We walked. |",
    "Our team won! | The crowd cheered? | No, it booed. |",
    "Apples, pears, etc. are fruit. | Carrots are not. |",
    "She works at Acme Inc. in Boston. | She likes it. |",
    "Version 2.0.1 is out. | Please update. |",
    "The value of pi is about 3.14159. | Remember it. |",
    "Jan. 5 is my birthday. | Feb. 3 is hers. |",
]


def _truth(case: str):
    words = case.replace("|", "").split()
    ends, count = set(), 0
    for token in case.split():
        if token == "|":
            ends.add(count)
        else:
            count += 1
    return words, ends


def _ends(sentences: List[List[str]]) -> Set[int]:
    ends, count = set(), 0
    for sentence in sentences:
        count += len(sentence)
        ends.add(count)
    return ends


def _baseline(rev: str, path: str, name: str) -> types.ModuleType:
    """Load ``path`` as it was at ``rev`` (its relative imports from today's package)."""
    source = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    package = path[:-3].replace("/", ".").rsplit(".", 1)[0]
    module = types.ModuleType(name)
    module.__package__ = package
    sys.modules[name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BEFORE)
    parser.add_argument("--verbose", action="store_true", help="show each case a splitter gets wrong")
    args = parser.parse_args(argv)
    old_engines = _baseline(args.baseline_rev, "lmnt_sync/server/engines/__init__.py", "old_engines")
    old_buffer = _baseline(args.baseline_rev, "lmnt_sync/server/buffering.py", "old_buffering")

    def buffer_rule(words: List[str]) -> List[List[str]]:
        text, out, start = " ".join(words) + " ", [], 0
        for match in old_buffer._SENTENCE_END.finditer(text):
            piece = text[start:match.end()].split()
            if piece:
                out.append(piece)
            start = match.end()
        rest = text[start:].split()
        return out + ([rest] if rest else [])

    candidates: Dict[str, Callable[[List[str]], List[List[str]]]] = {
        "stream buffer (before)": buffer_rule,
        "engine regex (before)": lambda words: old_engines.split_sentences(" ".join(words), 1000),
        "pysbd (now)": lambda words: split_words(words, 1000),
    }
    print("| splitter | wrong cuts | missed ends | cases all right | us per case |")
    print("|---|---|---|---|---|")
    for name, split in candidates.items():
        wrong = missed = right = 0
        for case in CASES:  # warm-up: imports, regex compiles, pysbd's rule tables
            split(_truth(case)[0])
        t0 = time.perf_counter()
        for case in CASES:
            words, truth = _truth(case)
            found = _ends(split(words))
            wrong += len(found - truth)
            missed += len(truth - found)
            right += found == truth
            if found != truth and args.verbose:
                print(f"  {name}: {' / '.join(' '.join(x) for x in split(words))}", file=sys.stderr)
        per_case = (time.perf_counter() - t0) / len(CASES) * 1e6
        print(f"| {name} | {wrong} | {missed} | {right}/{len(CASES)} | {per_case:.0f} |")
    # What the stream buffer costs the event loop: text in 4-character pieces
    # (a language model's tokens), per sentence released.
    hard = " ".join(case.replace("| ", "").replace(" |", "") for case in CASES) + " "
    print()
    print("| stream buffer | us of event loop per sentence, hard cases | plain prose |")
    print("|---|---|---|")
    for name, module in (("before", old_buffer), ("now", sys.modules["lmnt_sync.server.buffering"])):
        cells = []
        for text in (hard, PROSE):
            pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
            best = float("inf")
            for _ in range(5):
                buffer, released = module.TextBuffer(), 0
                t0 = time.perf_counter()
                for piece in pieces:
                    released += len(buffer.push(piece))
                released += len(buffer.flush())
                best = min(best, (time.perf_counter() - t0) / released * 1e6)
            cells.append(f"{best:.0f}")
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
