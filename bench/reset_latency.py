"""Barge-in and streaming segments: reset latency, first audio, pauses mid-sentence.

Run from the repository root (about 6 minutes; prints Markdown):

    python bench/reset_latency.py [--baseline-rev e4ede77] [--trials 20] [--json out.json]

Two servers run in their own processes (``bench/server_proc.py``, default
engine hibari, every engine loaded), one from this tree and one from
``--baseline-rev`` (exported with ``git archive`` to a temporary folder), and
the same client measures both, interleaved:

* **Reset latency mid-paragraph**: one session; per trial a ~170-word
  paragraph and ``flush``, then after the first audio and a random 0.2-1.0 s
  more of reading, ``reset``; the figure is from sending the reset to
  receiving ``reset_complete`` (loopback, so it bounds the server's own time
  from above). Audio frames received after ``reset_complete`` are counted:
  they would be cancelled text.
* **First audio when text streams in**: a new session per run; the words of
  a paragraph are sent one per message at ``R`` words/s (8: a slow language
  model; 30: a typical one) then ``finish``; first audio is from sending the
  first word to the first audio frame. A third pattern sends the first 6
  words at once, then nothing for 1 s (a model that stalls), then the rest.
* **Extra pauses inside sentences** (seams): over the same sessions' audio
  (pcm_s16le, 24 kHz), silences over 0.25 s after a word without a sentence
  mark (``tests/speech_check.pauses_inside_sentences``) that are also more
  than 0.1 s longer than the same server's one-piece REST rendering pauses
  there (the longer of two renderings), per minute of audio.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server_proc import export, spawn, stop  # noqa: E402
from speech_check import pauses_inside_sentences  # noqa: E402
from stats import percentile  # noqa: E402

#: The server before issue 12 (sentence splitter, early start, reset, joins).
BEFORE = "e4ede77"
RESET_TEXT = (
    "The little boat drifted slowly along the quiet river while the children watched the herons "
    "fishing in the reeds. Their grandmother, who had grown up in the valley, told them stories "
    "about the old mill and the winter the river froze solid. ") * 4
STREAMED = [
    "When the storm finally passed, Dr. Patel walked down to the harbor with her two dogs. The boats, "
    "which had been tied up all night, rocked gently against the pier while the fishermen checked their "
    "nets for damage and talked quietly about the weather.",
    "Sure! To reset your password, open the settings page and choose the security tab. Then click the "
    "button labelled change password and follow the instructions in the email we send you.",
    "The museum opens at 9 a.m. on weekdays and closes at 5 p.m. except on public holidays when it stays "
    "closed all day so that the staff can rest and the cleaners can work without any visitors around.",
    "I think the best approach here is to start with a small prototype and measure how it behaves under "
    "real load before we commit to the full design because the requirements may still change.",
]


def _connect(info: Dict[str, Any]) -> websocket.WebSocket:
    ws = websocket.create_connection(info["url"].replace("http", "ws", 1) + "/v1/ai/speech/stream", timeout=60)
    ws.send(json.dumps({"X-API-Key": info["api_key"], "lmnt-version": "1.2", "voice": "lily",
                        "format": "pcm_s16le", "sample_rate": 24000, "return_timestamps": True}))
    return ws


def _recv(ws: websocket.WebSocket):
    opcode, data = ws.recv_data()
    if opcode == websocket.ABNF.OPCODE_BINARY:
        return "audio", data
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return "json", json.loads(data)
    return "close", None


def reset_trials(info: Dict[str, Any], trials: int, rng: random.Random) -> Dict[str, Any]:
    """Reset latency (ms) over ``trials`` barge-ins on one session."""
    ws = _connect(info)
    latencies: List[float] = []
    late_frames = 0
    nonce = 0
    try:
        for _ in range(trials):
            nonce += 2
            ws.send(json.dumps({"type": "text", "text": RESET_TEXT}))
            ws.send(json.dumps({"type": "flush", "nonce": nonce - 1}))
            while _recv(ws)[0] != "audio":
                pass
            until = time.perf_counter() + rng.uniform(0.2, 1.0)
            while time.perf_counter() < until:
                _recv(ws)
            ws.send(json.dumps({"type": "reset", "nonce": nonce}))
            t0 = time.perf_counter()
            while True:
                kind, message = _recv(ws)
                if kind == "json" and message.get("type") == "reset_complete":
                    break
            latencies.append((time.perf_counter() - t0) * 1000)
            # Anything of the paragraph after the ack would be cancelled text: a
            # flush with no text answers at once, so whatever precedes its ack is late.
            ws.send(json.dumps({"type": "flush", "nonce": nonce + 100000}))
            while True:
                kind, message = _recv(ws)
                if kind == "audio":
                    late_frames += 1
                elif kind == "json" and message.get("type") == "flush_complete":
                    break
    finally:
        ws.close()
    return {"p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "max_ms": max(latencies), "late_frames": late_frames, "n": len(latencies)}


def stream_run(info: Dict[str, Any], text: str, pattern: str) -> Dict[str, Any]:
    """Send ``text`` word by word per ``pattern``; return first audio (ms), pauses, audio seconds."""
    ws = _connect(info)
    words = text.split()
    first_sent = [0.0]

    def writer() -> None:
        rate = {"8wps": 8.0, "30wps": 30.0, "stall": 30.0}[pattern]
        start = time.perf_counter()
        first_sent[0] = start
        for i, word in enumerate(words):
            if pattern == "stall" and i < 6:
                delay = 0.0
            elif pattern == "stall":
                delay = 1.0 + (i - 6) / rate
            else:
                delay = i / rate
            time.sleep(max(0.0, start + delay - time.perf_counter()))
            ws.send(json.dumps({"type": "text", "text": word + " "}))
        ws.send(json.dumps({"type": "finish"}))

    thread = threading.Thread(target=writer, name="bench-writer")
    thread.start()
    audio = bytearray()
    stamps: List[dict] = []
    first = None
    try:
        while True:
            kind, message = _recv(ws)
            if kind == "close":
                break
            if kind == "audio":
                if first is None:
                    first = time.perf_counter()
                audio += message
            elif message.get("type") == "timestamps":
                stamps += message["timestamps"]
    except websocket.WebSocketConnectionClosedException:
        pass
    finally:
        thread.join()
        ws.close()
    pauses = pauses_inside_sentences(bytes(audio), 24000, stamps)
    whole = _whole_pauses(info, text)
    extra = sum(1 for k, s in pauses.items() if s > 0.25 and s > whole.get(k, 0.0) + 0.1)
    return {"first_ms": (first - first_sent[0]) * 1000, "extra_pauses": extra, "audio_s": len(audio) / 2 / 24000}


def _whole_pauses(info: Dict[str, Any], text: str) -> Dict[int, float]:
    """Pauses inside sentences of the REST one-piece rendering (longest of two)."""
    pauses: Dict[int, float] = {}
    for _ in range(2):
        reply = requests.post(info["url"] + "/v1/ai/speech", timeout=120,
                              headers={"X-API-Key": info["api_key"], "lmnt-version": "1.2"},
                              json={"text": text, "voice": "lily", "format": "raw", "return_timestamps": True})
        reply.raise_for_status()
        body = reply.json()
        found = pauses_inside_sentences(base64.b64decode(body["audio"]), 24000, body["timestamps"])
        for k, seconds in found.items():
            pauses[k] = max(seconds, pauses.get(k, 0.0))
    return pauses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BEFORE)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lmnt-bench-base-") as base:
        trees = {"after": ROOT, "before": export(args.baseline_rev, base)}
        servers = {name: spawn(tree, "--engine", "hibari") for name, tree in trees.items()}
        try:
            for name, info in servers.items():
                results[name] = {"reset": reset_trials(info, args.trials, rng), "stream": {}}
            for pattern in ("8wps", "30wps", "stall"):
                for text in STREAMED:
                    for name, info in servers.items():
                        results[name]["stream"].setdefault(pattern, []).append(stream_run(info, text, pattern))
        finally:
            for info in servers.values():
                stop(info)
    print("| server | reset -> reset_complete p50 ms | p95 ms | max ms | audio frames after it |")
    print("|---|---|---|---|---|")
    for name in ("before", "after"):
        r = results[name]["reset"]
        print(f"| {name} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} | {r['late_frames']} |")
    print()
    print("| server | words arrive | first audio p50 ms | max ms | extra pauses inside sentences per min |")
    print("|---|---|---|---|---|")
    for pattern in ("8wps", "30wps", "stall"):
        for name in ("before", "after"):
            runs = results[name]["stream"][pattern]
            firsts = [r["first_ms"] for r in runs]
            per_min = sum(r["extra_pauses"] for r in runs) / (sum(r["audio_s"] for r in runs) / 60)
            print(f"| {name} | {pattern} | {percentile(firsts, 0.5):.0f} | {max(firsts):.0f} | {per_min:.1f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
