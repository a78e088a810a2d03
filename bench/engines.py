"""Benchmark the offline engines: load time, first-chunk latency, speed, WER.

Run from the repository root:

    python bench/engines.py            # all engines, prints a Markdown table

Each engine is measured in a fresh subprocess so load times are cold (no
module or model already imported) and engines do not share a warm cache.

Figures:
    load: import + construct + ``load()``, seconds.
    first chunk: median over 5 runs of the time until ``synthesize`` yields
        its first chunk for a short sentence (after one warm-up), ms.
    RTF: wall time / audio duration for a ~90-word paragraph, median of 3
        (lower is faster; 0.1 = ten times real time).
    RTF x2: the same with two requests at once in two threads (aggregate
        wall time / total audio) - the server's case on a 2-core box.
    WER: mean word error rate of pocketsphinx on 10 sentences.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

__all__ = ["measure", "main"]

SHORT = "Hello, how can I help you today?"
PARAGRAPH = (
    "The library opens at nine in the morning and closes at six in the evening. "
    "Visitors can borrow up to five books at a time, and most loans last three weeks. "
    "If you need a book that is already out, ask at the front desk and we will hold it for you "
    "when it comes back. Quiet study rooms are on the second floor; please book them a day ahead. "
    "Children's story time is every Saturday at eleven, and everyone is welcome to join."
)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home tonight.",
    "I would like a cup of coffee with milk and sugar.",
    "The weather today is sunny and warm.",
    "We will meet at the station at seven o clock.",
    "Turn left at the next corner and walk two blocks.",
    "My sister bought a new car last week.",
    "Can you tell me where the nearest bank is?",
    "The children played in the park until dark.",
    "Thank you very much for your help yesterday.",
]
VOICE = {"piper": "joe", "hibari": "heart", "synthetic": "synth"}


def _audio_seconds(chunks, rate):
    return sum(len(c.pcm) for c in chunks) / 2 / rate


def measure(name: str) -> dict:
    """Measure one engine in this process; returns the figures as a dict."""
    t0 = time.perf_counter()
    from lmnt_sync.server.engines import get_engine

    engine = get_engine(name)
    engine.load()
    load = time.perf_counter() - t0
    voice = VOICE[name]
    list(engine.synthesize("Warm up.", voice))

    firsts = []
    for _ in range(5):
        t = time.perf_counter()
        next(iter(engine.synthesize(SHORT, voice)))
        firsts.append(time.perf_counter() - t)

    rtfs = []
    for _ in range(3):
        t = time.perf_counter()
        chunks = list(engine.synthesize(PARAGRAPH, voice))
        rtfs.append((time.perf_counter() - t) / _audio_seconds(chunks, engine.sample_rate))

    audio = []

    def run():
        audio.append(_audio_seconds(list(engine.synthesize(PARAGRAPH, voice)), engine.sample_rate))

    threads = [threading.Thread(target=run) for _ in range(2)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rtf2 = (time.perf_counter() - t) / sum(audio)

    from speech_check import transcribe, word_error_rate

    wers = []
    for sentence in SENTENCES:
        pcm = b"".join(c.pcm for c in engine.synthesize(sentence, voice))
        wers.append(word_error_rate(sentence, transcribe(pcm, engine.sample_rate)))

    return {
        "engine": name,
        "rate": engine.sample_rate,
        "load_s": load,
        "first_chunk_ms": statistics.median(firsts) * 1000,
        "rtf": statistics.median(rtfs),
        "rtf_x2": rtf2,
        "wer": statistics.mean(wers),
    }


def main(argv=None) -> int:
    """Measure every engine (each in a subprocess) and print a table."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(argv[1])))
        return 0
    names = argv or ["piper", "hibari", "synthetic"]
    rows = []
    for name in names:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", name],
            check=True, capture_output=True, text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| engine | rate Hz | load s | first chunk ms | RTF | RTF, 2 at once | WER (10 sentences) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['rate']} | {r['load_s']:.2f} | {r['first_chunk_ms']:.0f} | "
            f"{r['rtf']:.3f} | {r['rtf_x2']:.3f} | {r['wer']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
