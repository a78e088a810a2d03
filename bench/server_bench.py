"""Server figures with real voices: first-audio latency, RTF, concurrent sessions.

Used by ``bench/run.py``; the server runs in its own process
(``server_proc.py``) and these functions talk to it over loopback.

* ``first_audio``: time from sending ``flush`` (right after a short
  sentence) to the first byte of audio, seen as the socket turning readable
  (with no timestamps requested the first frame after a flush is audio;
  checked). websocket-client, no thread: the client adds the least it can.
* ``real_time_factor``: a paragraph, flushed at once; wall time from the
  flush to ``flush_complete`` over the audio's duration.
* ``ramp_level``: N sessions at once (starts spread over one second), each
  sending text word by word at ``words_per_s`` (about twice the speaking
  rate, like a language model) and then ``finish``. A session *underruns*
  when, playing from its first frame on, a frame arrives after the audio
  before it has played out. First audio under load: from sending the word
  that completes the first segment to its first frame. The server's RSS
  and CPU (and this process's CPU, which shares the cores) are sampled.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import select
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from engines import PARAGRAPH, SHORT  # noqa: E402  (bench/engines.py: the same texts)
from lmnt_sync.server.buffering import TextBuffer  # noqa: E402
from stats import percentile, proc_cpu, proc_rss  # noqa: E402

__all__ = ["first_audio", "real_time_factor", "ramp_level", "SHORT", "PARAGRAPH", "FORMATS"]

FORMATS = ("pcm_s16le", "pcm_f32le", "ulaw", "mp3", "webm")
BYTES_PER_S = {"pcm_s16le": 48000}  # at 24 kHz


def _ws_url(base: str) -> str:
    from lmnt_sync.transport import websocket_url

    return websocket_url(base)


def _open(url: str, key: str, voice: str, fmt: str):
    import websocket

    ws = websocket.create_connection(_ws_url(url), timeout=60)
    ws.send(json.dumps({"X-API-Key": key, "lmnt-version": "1.2", "voice": voice,
                        "format": fmt, "sample_rate": 24000}))
    _until(ws, "ready")
    return ws


def _until(ws, kind: str) -> int:
    """Read until the text message of type ``kind``; return the audio bytes seen."""
    import websocket

    total = 0
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            total += len(data)
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            message = json.loads(data)
            if message.get("type") == "error":
                raise RuntimeError(f"server error: {message}")
            if message.get("type") == kind:
                return total
        else:
            raise RuntimeError(f"connection closed while waiting for {kind}")


def first_audio(url: str, key: str, voice: str, fmt: str, n: int) -> List[float]:
    """Return ``n`` flush-to-first-audio-byte times in ms (after one warm-up)."""
    import websocket

    ws = _open(url, key, voice, fmt)
    out: List[float] = []
    try:
        for i in range(n + 1):
            ws.send(json.dumps({"type": "text", "text": SHORT}))
            t0 = time.perf_counter_ns()
            ws.send(json.dumps({"type": "flush", "nonce": i + 1}))
            select.select([ws.sock], [], [], 30)
            t1 = time.perf_counter_ns()
            opcode, _ = ws.recv_data()
            if opcode != websocket.ABNF.OPCODE_BINARY:
                raise RuntimeError(f"expected audio first after flush, got opcode {opcode}")
            _until(ws, "flush_complete")
            if i:  # the first one warms the voice and the codec
                out.append((t1 - t0) / 1e6)
    finally:
        ws.close()
    return out


def real_time_factor(url: str, key: str, voice: str, repeats: int) -> List[float]:
    """Return RTFs (wall time / audio duration) of a paragraph, flushed at once."""
    ws = _open(url, key, voice, "pcm_s16le")
    out = []
    try:
        for i in range(repeats):
            ws.send(json.dumps({"type": "text", "text": PARAGRAPH}))
            t0 = time.perf_counter()
            ws.send(json.dumps({"type": "flush", "nonce": i + 1}))
            total = _until(ws, "flush_complete")
            out.append((time.perf_counter() - t0) / (total / BYTES_PER_S["pcm_s16le"]))
    finally:
        ws.close()
    return out


async def _session(url: str, key: str, voice: str, words: List[str], words_per_s: float,
                   delay: float) -> Dict[str, Any]:
    import aiohttp

    await asyncio.sleep(delay)
    arrivals: List[tuple] = []
    sent: List[float] = []  # when each word went out
    async with aiohttp.ClientSession() as http:
        t_open = time.perf_counter()
        async with http.ws_connect(_ws_url(url), max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"X-API-Key": key, "lmnt-version": "1.2", "voice": voice,
                                          "format": "pcm_s16le", "sample_rate": 24000}))

            async def writer() -> None:
                start = time.perf_counter()
                for i, word in enumerate(words):
                    await asyncio.sleep(max(0.0, start + i / words_per_s - time.perf_counter()))
                    await ws.send_str(json.dumps({"type": "text", "text": word + " "}))
                    sent.append(time.perf_counter())
                await ws.send_str(json.dumps({"type": "finish"}))

            task = asyncio.ensure_future(writer())
            error = None
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    arrivals.append((time.perf_counter(), len(msg.data)))
                elif msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "error":
                    error = msg.data
            await task
    return {"open": t_open, "sent": sent, "arrivals": arrivals, "error": error}


def _underrun(arrivals: List[tuple]) -> Dict[str, float]:
    """Play from the first frame on; return the worst gap and the least headroom, seconds."""
    if not arrivals:
        return {"gap": float("inf"), "headroom": float("-inf")}
    bps = BYTES_PER_S["pcm_s16le"]
    played_until = arrivals[0][0] + arrivals[0][1] / bps
    gap, headroom = 0.0, float("inf")
    for t, size in arrivals[1:]:
        headroom = min(headroom, played_until - t)
        if t > played_until:
            gap = max(gap, t - played_until)
            played_until = t
        played_until += size / bps
    return {"gap": gap, "headroom": headroom if headroom != float("inf") else 0.0}


def _first_segment_words(words: List[str]) -> int:
    """Return how many words, sent one by one, release the server's first segment."""
    buffer = TextBuffer()
    for i, word in enumerate(words):
        if buffer.push(word + " "):
            return i + 1
    return len(words)


def ramp_level(url: str, key: str, pid: int, voice: str, sessions: int, seconds: float,
               words_per_s: float = 6.0) -> Dict[str, Any]:
    """Run ``sessions`` concurrent streaming sessions; return underruns, latency, RSS, CPU."""
    text = (PARAGRAPH + " ") * 4
    words = text.split()[: max(1, int(seconds * words_per_s))]
    rng = random.Random(sessions)
    rss_before, cpu_before = proc_rss(pid), proc_cpu(pid)
    peak = [rss_before]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], proc_rss(pid))
            await asyncio.sleep(0.2)

    async def run() -> List[Dict[str, Any]]:
        sampler = asyncio.ensure_future(sample())
        results = await asyncio.gather(*[
            _session(url, key, voice, words, words_per_s, rng.uniform(0, 1.0)) for _ in range(sessions)
        ], return_exceptions=True)
        sampler.cancel()
        return results

    t0, load_cpu0 = time.perf_counter(), time.process_time()
    results = asyncio.run(run())
    wall = time.perf_counter() - t0
    load_cores = (time.process_time() - load_cpu0) / wall
    failures = [r for r in results if isinstance(r, BaseException) or r["error"]]
    ok = [r for r in results if not isinstance(r, BaseException) and not r["error"]]
    checks = [_underrun(r["arrivals"]) for r in ok]
    # The first frame speaks the first segment, due once the word completing it was sent
    # (words come faster than the buffer's idle_seconds, so only punctuation cuts).
    n_first = _first_segment_words(words)
    firsts = [(r["arrivals"][0][0] - r["sent"][n_first - 1]) * 1000 for r in ok
              if r["arrivals"] and len(r["sent"]) >= n_first]
    return {
        "sessions": sessions,
        "failed": len(failures),
        "failure": repr(failures[0])[:200] if failures else None,
        "underruns": sum(1 for c in checks if c["gap"] > 0),
        "worst_gap_ms": max((c["gap"] for c in checks), default=0.0) * 1000,
        "min_headroom_s": min((c["headroom"] for c in checks), default=0.0),
        "first_audio_p50_ms": percentile(firsts, 0.5),
        "first_audio_p95_ms": percentile(firsts, 0.95),
        "audio_s": sum(sum(size for _, size in r["arrivals"]) for r in ok) / BYTES_PER_S["pcm_s16le"],
        "server_rss_per_session": (peak[0] - rss_before) / sessions,
        "server_cpu_cores": (proc_cpu(pid) - cpu_before) / wall,
        "load_cpu_cores": load_cores,  # this process, generating the load on the same 2 cores
        "wall_s": wall,
    }
