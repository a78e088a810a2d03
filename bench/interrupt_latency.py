"""How fast ``Player.interrupt()`` stops the sound, against raw pyaudio in the same run.

Run from the repository root (about 2 minutes; prints Markdown):

    python bench/interrupt_latency.py [--trials 30] [--seed N] [--json out.json]

The audio path, the recorder and its clock are ``sink_clock.py``'s (the
tests' pyaudio -> ALSA -> private PulseAudio null sink, its monitor recorded
with ``parec``); ``t0`` is taken from the chunks of the 0.6 s before each
call. The callback-mode abort below, which cannot stop the sound before it
is called, reads about -1 ms.

The sound is one continuous tone: the local server's synthetic engine
speaking one 72-letter word (a 2.9 s burst; between words it leaves 50 ms
gaps, in which a stop could not be seen). Each trial calls the stop at a
random moment 0.2-1.0 s after the first byte reached the ALSA device. The
sound *stops* at the end of the last sounding sample up to 250 ms after the
call (no other sound plays then, so an underrun gap is not taken for the
stop, and sound that comes back counts against the method); the figure is
its play time minus the time of the call. A trial counts if the tone sounded
in the 100 ms before the call; trials with an underrun (a silent run of
5 ms or more) around the call are shown apart as well.

Methods, interleaved trial by trial in a rotated order:

* ``lmnt_sync``: one ``Player`` (defaults: 10 ms blocks) playing one
  session on a ``LocalServer(engine="synthetic")`` in this process;
  per trial ``append_text`` + ``flush``, then ``player.interrupt()``.
* ``pyaudio abort``, the baseline: a raw pyaudio stream with the same
  format and 240-frame buffers, a thread writing the tone in 10 ms blocks;
  the stop sets a flag, the thread sees it after its current write and calls
  ``Pa_AbortStream`` (PortAudio's blocking streams are not thread-safe, so
  this is the least a blocking writer can do; the player does the same).
* ``pyaudio stop_stream``: the same, with ``stream.stop_stream()``
  (``Pa_StopStream``; it should play out what the device holds, but on this
  ALSA -> pulse path it returns at once and what is buffered is not heard).
* ``pyaudio callback abort``: a callback-mode stream (PortAudio's own
  thread pulls the tone); the caller calls ``Pa_AbortStream`` directly.

Benchmark, not a test: nothing here passes or fails on a number.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

from lmnt_sync.playback.audio_device import native_stderr_silenced  # noqa: E402
from sink_clock import RATE, Recorder, Sounding, open_sink, sink_origin  # noqa: E402
from stats import percentile  # noqa: E402

__all__ = ["main"]

BLOCK = 240  # frames: the player's default block (10 ms)
WORD = "interrupt" * 8  # one word: one continuous tone from the synthetic engine
SILENT = 64  # |sample| at or below this is silence (the tone peaks at ~9800)
BEFORE_S = 0.100  # a trial counts if the tone sounded in this time before the call
LOOK_S = 0.250  # the last sound up to this long after the call is where it stopped
GAP_S = 0.005  # a silent run this long inside the tone is an underrun (not a zero crossing)
AFTER_S = 0.30  # quiet time after each stop, before the next trial starts
METHODS = ["lmnt_sync", "pyaudio abort", "pyaudio stop_stream", "pyaudio callback abort"]
BASELINE = "pyaudio abort"


# -- analysis -------------------------------------------------------------

def stop_after_call(audio: np.ndarray, stamps: np.ndarray, t_call: float) -> Dict[str, Any]:
    """Where the sound stopped for good after ``t_call`` (ms), or why the trial does not count.

    The stop is the end of the last sounding sample up to LOOK_S after the
    call (nothing else plays then), so an underrun gap is not taken for it.
    """
    t0 = sink_origin(stamps, t_call)
    if t0 is None:
        return {"invalid": "recorder stalled"}
    window = stamps[(stamps[:, 0] >= t_call - 0.6) & (stamps[:, 0] < t_call)]
    offsets = window[:, 0] - window[:, 1] / RATE
    at_call = int(round((t_call - t0) * RATE))
    before, after = int(BEFORE_S * RATE), int(LOOK_S * RATE)
    if at_call + after > len(audio):
        return {"invalid": "recording ended"}
    loud = np.abs(audio[at_call - before: at_call + after].astype(np.int32)) > SILENT
    sounding = np.flatnonzero(loud)
    if not len(sounding) or sounding[0] >= before:
        return {"invalid": "silent before the call"}
    stop = int(sounding[-1]) + 1
    return {"stop_ms": 1000.0 * (stop - before) / RATE, "lingered": stop > len(loud) - RATE // 100,
            "gap_before": _gap(loud[:before]), "gap_after": _gap(loud[before:stop]),
            "delivery_ms": 1000.0 * float(np.median(offsets - t0))}


def _gap(loud: np.ndarray) -> bool:
    """True if a silent run of GAP_S or longer lies between sounding samples (an underrun)."""
    sounding = np.flatnonzero(loud)
    return bool(len(sounding) > 1 and np.diff(sounding).max() > GAP_S * RATE)


# -- the methods ------------------------------------------------------------

class LmntMethod:
    """The player on one synthetic-engine session; abort times recorded for the breakdown."""

    def __init__(self) -> None:
        from lmnt_sync import Player, Speech
        from lmnt_sync.server import LocalServer

        self.server = LocalServer(engine="synthetic").start()
        self.speech = Speech(api_key=self.server.api_key, base_url=self.server.url)
        self.conn = self.speech.synthesize_streaming("synth", format="pcm_s16le", sample_rate=RATE)
        self.player = Player(RATE)
        self.latency_s = self.player._device._stream.get_output_latency()
        self.aborts: List[Tuple[float, float]] = []
        device, abort = self.player._device, self.player._device.abort

        def timed_abort() -> None:  # bench instrumentation only: when the output thread aborts
            started = time.monotonic()
            abort()
            self.aborts.append((started, time.monotonic()))

        device.abort = timed_abort
        self.player.play(self.conn)

    def begin(self) -> None:
        self.conn.append_text(WORD)
        self.conn.flush()

    def stop(self) -> None:
        self.player.interrupt()

    def close(self) -> None:
        self.player.close()
        self.conn.close()
        self.speech.close()
        self.server.stop()


class BlockingMethod:
    """Raw pyaudio: a thread writes the tone in blocks; the stop is taken between two writes."""

    def __init__(self, pa: Any, pcm: bytes, how: str) -> None:
        import pyaudio

        self.pcm, self.how = pcm, how
        self.stream = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True,
                              frames_per_buffer=BLOCK, start=False)
        self.latency_s = self.stream.get_output_latency()
        self.aborts: List[Tuple[float, float]] = []

    def begin(self) -> None:
        self.close_thread()  # the last trial's writer, which has stopped
        self._stop, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._play)
        self._thread.start()

    def _play(self) -> None:
        self.stream.start_stream()
        for at in range(0, len(self.pcm), 2 * BLOCK):
            if self._stop.is_set():
                break
            self.stream.write(self.pcm[at: at + 2 * BLOCK], exception_on_underflow=False)
        started = time.monotonic()
        abort_stream(self.stream) if self.how == "abort" else self.stream.stop_stream()
        self.aborts.append((started, time.monotonic()))
        self._done.set()

    def stop(self) -> None:
        self._stop.set()
        self._done.wait()

    def close_thread(self) -> None:
        if getattr(self, "_thread", None) is not None:
            self._thread.join()

    def close(self) -> None:
        self.close_thread()
        self.stream.close()


class CallbackMethod:
    """Raw pyaudio in callback mode: PortAudio's thread pulls the tone; the caller aborts."""

    def __init__(self, pa: Any, pcm: bytes) -> None:
        import pyaudio

        self.pcm, self.pos, self._continue = pcm, 0, pyaudio.paContinue
        self.stream = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True,
                              frames_per_buffer=BLOCK, start=False, stream_callback=self._callback)
        self.latency_s = self.stream.get_output_latency()
        self.aborts: List[Tuple[float, float]] = []

    def _callback(self, _in: Any, frames: int, _time: Any, _status: Any) -> Tuple[bytes, int]:
        block = self.pcm[self.pos: self.pos + 2 * frames]
        self.pos += 2 * frames
        return block + bytes(2 * frames - len(block)), self._continue

    def begin(self) -> None:
        self.pos = 0
        self.stream.start_stream()

    def stop(self) -> None:
        started = time.monotonic()
        abort_stream(self.stream)
        self.aborts.append((started, time.monotonic()))

    def close(self) -> None:
        self.stream.close()


def abort_stream(stream: Any) -> None:
    """Pa_AbortStream (pyaudio's Stream offers only Pa_StopStream)."""
    import pyaudio

    pyaudio.pa.abort_stream(stream._stream)
    stream._is_running = False


# -- the run ------------------------------------------------------------------

def speech_pcm(method: LmntMethod) -> bytes:
    """The tone the server makes for WORD (the baselines play the same samples)."""
    with method.speech.synthesize_streaming("synth", format="pcm_s16le", sample_rate=RATE) as conn:
        conn.append_text(WORD)
        conn.finish()
        return b"".join(message["audio"] for message in conn)


def sink_inputs(env: Dict[str, str]) -> str:
    """Buffer and sink latency of the ALSA stream that holds the most audio now."""
    text = subprocess.run(["pactl", "list", "sink-inputs"], env=env, capture_output=True, text=True).stdout
    found = [re.search(r"Buffer Latency: (\d+) usec\s+Sink Latency: (\d+) usec", block)
             for block in text.split("Sink Input #") if "ALSA plug-in" in block]
    best = max((m for m in found if m), key=lambda m: int(m.group(1)), default=None)
    return f"{int(best.group(1)) / 1000:.1f} / {int(best.group(2)) / 1000:.1f}" if best else "?"


def run_trials(methods: Dict[str, Any], sounding: Sounding, trials: int, rng: random.Random,
               env: Dict[str, str]) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Trial by trial, methods in a rotated order; returns the calls and the streams' latencies."""
    names, calls, streams = list(methods), [], {}
    for round_no in range(trials):
        for name in names[round_no % len(names):] + names[: round_no % len(names)]:
            method = methods[name]
            sounding.mark()
            method.begin()
            sounding.wait()
            time.sleep(rng.uniform(0.2, 1.0))
            if name not in streams:
                streams[name] = sink_inputs(env)
            aborts = len(method.aborts)
            t_call = time.monotonic()
            method.stop()
            t_return = time.monotonic()
            abort = method.aborts[aborts] if len(method.aborts) > aborts else (float("nan"),) * 2
            calls.append({"method": name, "t_call": t_call, "blocks_ms": 1000 * (t_return - t_call),
                          "abort_start_ms": 1000 * (abort[0] - t_call), "abort_end_ms": 1000 * (abort[1] - t_call)})
            time.sleep(AFTER_S)
    return calls, streams


def _quantiles(values: List[float]) -> Dict[str, float]:
    return {q: percentile(values, p) for q, p in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))}


def summarize(calls: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for name in METHODS:
        mine = [c for c in calls if c["method"] == name]
        valid = [c for c in mine if "stop_ms" in c]
        calm = [c for c in valid if not c["gap_before"] and not c["gap_after"]]
        figures: Dict[str, Any] = {
            "trials": len(mine), "valid": len(valid), "calm": len(calm),
            "lingered": sum(c["lingered"] for c in valid),
            "invalid": sorted({c["invalid"] for c in mine if "invalid" in c}),
            "stop_calm_ms": _quantiles([c["stop_ms"] for c in calm])}
        for key in ("stop_ms", "blocks_ms", "abort_start_ms", "abort_end_ms", "delivery_ms"):
            figures[key] = _quantiles([c[key] for c in valid])
        out[name] = figures
    return out


def _three(q: Dict[str, float]) -> str:
    return f"{q['p50']:.1f} / {q['p95']:.1f} / {q['max']:.1f}"


def report(summary: Dict[str, Dict[str, Any]], settings: Dict[str, Any]) -> str:
    base = summary[BASELINE]["stop_ms"]
    lines = ["| method | trials counted | **sound stops**, ms after the call, p50 / p95 / max | ratio to "
             "pyaudio abort, p50 / p95 | without an underrun: trials, p50 / p95 / max ms | the call blocks, "
             "p50 / p95 / max ms | abort called, p50 ms | abort returned, p50 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name in METHODS:
        f = summary[name]
        stop = f["stop_ms"]
        ratio = f"{stop['p50'] / base['p50']:.2f}x / {stop['p95'] / base['p95']:.2f}x"
        lines.append(f"| {name} | {f['valid']}/{f['trials']} | {_three(stop)} | {ratio} "
                     f"| {f['calm']}: {_three(f['stop_calm_ms'])} | {_three(f['blocks_ms'])} "
                     f"| {f['abort_start_ms']['p50']:.1f} | {f['abort_end_ms']['p50']:.1f} |")
    lines += ["", "| method | PortAudio output latency ms | its PulseAudio stream while playing: buffer / sink "
              "latency ms |", "|---|---|---|"]
    lines += [f"| {n} | {1000 * settings['latency_s'][n]:.1f} | {settings['streams'].get(n, '?')} |" for n in METHODS]
    lmnt = summary["lmnt_sync"]
    met = lmnt["valid"] and not lmnt["lingered"] and lmnt["stop_ms"]["max"] <= 50
    not_counted = "; ".join(f"{n}: {', '.join(summary[n]['invalid'])}" for n in METHODS if summary[n]["invalid"])
    lines += ["", f"Null sink: {settings['sink']}. Recorder: median delivery "
              f"{lmnt['delivery_ms']['p50']:.2f} ms after the envelope. Sound still there "
              f"{LOOK_S * 1000:.0f} ms after the call: "
              + ", ".join(f"{n} {summary[n]['lingered']}" for n in METHODS)
              + f". Not counted: {not_counted or 'none'}.",
              f"Seed {settings['seed']}; {settings['elapsed_s']:.0f} s.", "",
              f"Target: sound stops within 50 ms of `interrupt()`: {'met' if met else '**missed**'} "
              f"(lmnt_sync p50 {lmnt['stop_ms']['p50']:.1f}, p95 {lmnt['stop_ms']['p95']:.1f}, "
              f"max {lmnt['stop_ms']['max']:.1f} ms over {lmnt['valid']} trials)."]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="interrupt() latency vs raw pyaudio, measured at the sink")
    parser.add_argument("--trials", type=int, default=30, help="trials per method (default 30)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the call moments")
    parser.add_argument("--json", help="also write every trial and the summary to this file")
    parser.add_argument("--keep", action="store_true", help="keep the recording and logs (the folder is printed)")
    args = parser.parse_args(argv)
    from playkit import PulseSink

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    folder = Path(tempfile.mkdtemp(prefix="lmnt-interrupt-"))
    sink, out, env = open_sink(folder)  # before PortAudio starts: the recording ALSA default device
    methods: Dict[str, Any] = {}
    pa = None
    started = time.monotonic()
    try:
        recorder = Recorder(env, folder)
        methods["lmnt_sync"] = LmntMethod()  # the Player silences ALSA and JACK itself
        pcm = speech_pcm(methods["lmnt_sync"])
        import pyaudio

        with native_stderr_silenced():  # ALSA and JACK list every device they cannot open
            pa = pyaudio.PyAudio()
            methods["pyaudio abort"] = BlockingMethod(pa, pcm, "abort")
            methods["pyaudio stop_stream"] = BlockingMethod(pa, pcm, "stop")
            methods["pyaudio callback abort"] = CallbackMethod(pa, pcm)
        calls, streams = run_trials(methods, Sounding(out), args.trials, random.Random(seed), env)
        sink_line = re.search(r"Latency: .*", PulseSink._pactl(env, "list", "sinks"))
        audio, stamps = recorder.stop()
    finally:
        for method in methods.values():
            method.close()
        if pa is not None:
            pa.terminate()
        sink.stop()
        if args.keep:
            print(f"recording and logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for call in calls:
        call.update(stop_after_call(audio, stamps, call["t_call"]))
    summary = summarize(calls)
    settings = {"latency_s": {n: m.latency_s for n, m in methods.items()}, "streams": streams, "seed": seed,
                "sink": (sink_line.group(0) if sink_line else "?") + f", {RATE} Hz mono s16le",
                "elapsed_s": time.monotonic() - started}
    print(report(summary, settings))
    if args.json:
        Path(args.json).write_text(json.dumps({"calls": calls, "summary": summary, "settings": settings}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
