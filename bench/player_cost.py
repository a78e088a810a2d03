"""What playing costs the client: Player against the minimal loop, and an idle Player.

    python bench/player_cost.py [--rounds 3] [--only playing|idle] [--seconds 10] [--window 20]
                                [--compare TREE | --compare-rev REV]

Run from the repository root (prints Markdown). 3 rounds take about 3.5
minutes for ``--only playing`` (4.5 with ``--compare``) and about 6 for
``--only idle`` (7 with ``--compare``); without ``--only``, both.

Every client runs in a process of its own against ``bench/server_proc.py
--engine synthetic`` (instant tone-burst speech, its own process too), and
plays through the tests' real-time audio path (pyaudio -> ALSA -> a private
PulseAudio null sink, ``sink_clock.open_sink``), so the device takes audio
at the pace a sound card does. The parent reads each client process's CPU
time (``/proc/PID/task/*/schedstat``, every thread) and voluntary context
switches, as ``idle_cost.py`` does. Rounds interleave the clients; the
tables show medians.

* **Playing**: once the client is connected and its device open, the
  parent says "go"; the client speaks ``--seconds`` of audio (24 kHz
  pcm_s16le, one flush) and says "done" once it has all been played. The
  figure is CPU per second of audio and the share of a core over that time.
  ``Player``: ``Player(24000)`` (defaults: 10 ms blocks, which is also its
  PortAudio buffer size), and with ``block=0.04``, playing the session
  (``return_extras=True``; the minimal loop asks for the same timestamps),
  ``append_text`` + ``flush()``, then ``wait_idle()`` once the
  player has taken the turn (``seen_connection.py``).
  ``minimal``: ``minimal_loop.py`` (websocket-client in the caller's
  thread writing each frame into a blocking pyaudio stream), with pyaudio's
  defaults (buffer size unspecified: PortAudio chooses), with the Player's
  240 frames (10 ms) and with 1024 (43 ms).
* **Idle** (``--window`` seconds, scaled to a minute): ``Player`` playing an
  open session nobody speaks on, measured once it has closed its idle device
  (``close_device_after``, default), and with ``close_device_after=None`` (the
  device kept open); an lmnt_sync session iterated by a thread;
  the official SDK (lmnt 2.x) iterating (``idle_cost.py``'s clients); and a
  pyaudio output stream opened and not started, as a Player holds one (the
  floor of keeping a device open: PulseAudio's ALSA plugin runs a thread).

With ``--compare TREE`` the Player clients also run with lmnt_sync from
another checkout (``--compare-rev REV``: that revision, exported with
``git archive``).

Benchmark, not a test: nothing here passes or fails on a number.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.append(ROOT)  # last: a client's PYTHONPATH (--compare TREE) decides which lmnt_sync it plays with

from idle_cost import child as idle_child  # noqa: E402
from idle_cost import measure as measure_idle  # noqa: E402
from idle_cost import process_cost  # noqa: E402

__all__ = ["main"]

RATE = 24000
VOICE = "synth"
SENTENCE = "The player keeps playing while this sentence is spoken again. "
#: name -> Player block seconds, or the minimal loop's frames per buffer (None: pyaudio's default)
PLAYING = {"Player": 0.01, "Player, 40 ms blocks": 0.04, "minimal": None,
           "minimal, 10 ms buffers": 240, "minimal, 43 ms buffers": 1024}
IDLE = ("iterating", "sdk", "Player", "Player, device kept open", "pyaudio stream")


def text_for(seconds: float) -> str:
    """Enough sentences for about ``seconds`` of the synthetic engine's speech."""
    from lmnt_sync.server.engines.synthetic import SyntheticEngine

    one = sum(len(c.pcm) for c in SyntheticEngine().synthesize(SENTENCE, VOICE)) / 2 / RATE
    return SENTENCE * max(1, round(seconds / one))


# -- the client processes -------------------------------------------------------

def play_child(kind: str, url: str, key: str, text: str) -> None:
    """Connect, say "ready"; on "go" play ``text``, say "done SECONDS"; end when stdin closes."""
    if kind.startswith("Player"):
        from lmnt_sync import Player, Speech
        from seen_connection import SeenConnection

        speech = Speech(api_key=key, base_url=url)
        conn = speech.synthesize_streaming(VOICE, format="pcm_s16le", sample_rate=RATE, return_extras=True)
        seen = SeenConnection(conn)
        player = Player(RATE, block=PLAYING[kind])
        player.play(seen)
        conn.wait_ready(10)
        print("ready", flush=True)
        sys.stdin.readline()
        conn.append_text(text)
        conn.flush()
        seen.wait_taken(120)  # all of it is in the player
        player.wait_idle(timeout=300)
        print(f"done {seen.audio_bytes / 2 / RATE}", flush=True)
        sys.stdin.read()
        player.close()
        conn.close()
        speech.close()
        return
    import pyaudio

    import minimal_loop
    from lmnt_sync.playback.audio_device import native_stderr_silenced

    ws = minimal_loop.connect(url, key, VOICE, RATE)
    with native_stderr_silenced():
        pa = pyaudio.PyAudio()
        stream = minimal_loop.open_stream(pa, RATE, PLAYING[kind])
    print("ready", flush=True)
    sys.stdin.readline()
    turn = minimal_loop.speak_turn(ws, stream, text, 1)
    time.sleep(stream.get_output_latency())  # what the device holds plays out
    print(f"done {len(turn['pcm']) / 2 / RATE}", flush=True)
    sys.stdin.read()
    ws.close()
    stream.close()
    pa.terminate()


def idle_stream_child() -> None:
    """A pyaudio output stream opened (not started), as a Player holds one; idle until stdin closes."""
    import pyaudio

    from lmnt_sync.playback.audio_device import native_stderr_silenced

    with native_stderr_silenced():
        pa = pyaudio.PyAudio()
        stream = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True, frames_per_buffer=240,
                         start=False)
    print("idle", flush=True)
    sys.stdin.read()
    stream.close()
    pa.terminate()


def idle_player_child(url: str, key: str, keep_open: bool) -> None:
    """A Player playing an open session on which nothing is said; idle until stdin closes.

    Says "idle" once the Player has closed its idle device (``close_device_after``,
    its default), or at once with ``keep_open`` (None: the device stays open) and
    with a Player that predates the option (``--compare``).
    """
    import inspect

    from lmnt_sync import Player, Speech

    speech = Speech(api_key=key, base_url=url)
    conn = speech.synthesize_streaming(VOICE, format="pcm_s16le", sample_rate=RATE)
    closes = inspect.signature(Player).parameters.get("close_device_after")
    player = Player(RATE, close_device_after=None) if keep_open else Player(RATE)
    player.play(conn)
    conn.wait_ready(10)
    if closes is not None and not keep_open:
        _wait_for_the_stream_to_close(closes.default + 30)
    print("idle", flush=True)
    sys.stdin.read()
    player.close()
    conn.close()
    speech.close()


def _wait_for_the_stream_to_close(timeout: float) -> None:
    """Until PulseAudio's ALSA plugin thread (``threaded-ml``), which lives while a stream is open, has ended."""
    def open_stream() -> bool:
        for task in Path("/proc/self/task").iterdir():
            try:
                if Path(task, "comm").read_text().strip() == "threaded-ml":
                    return True
            except FileNotFoundError:  # that thread has just ended
                pass
        return False

    deadline = time.monotonic() + timeout
    while open_stream():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the idle Player's device was still open after {timeout:g} s")
        time.sleep(0.05)


# -- the parent -------------------------------------------------------------------

def measure_playing(kind: str, info: Dict[str, Any], text: str, tree: str) -> Dict[str, float]:
    """Run one playing client; CPU and wake-ups between "go" and "done"."""
    env = dict(os.environ, PYTHONPATH=tree or ROOT)
    proc = subprocess.Popen([sys.executable, __file__, "--play", kind, info["url"], info["api_key"], text],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{kind} did not start")
        time.sleep(1.0)  # start-up work (threads, first frames) ends outside the measurement
        cpu0, sw0 = process_cost(proc.pid)
        started = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = proc.stdout.readline().split()
        wall = time.monotonic() - started
        cpu1, sw1 = process_cost(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait(60)
    if not done or done[0] != "done":
        raise RuntimeError(f"{kind} did not finish playing")
    audio = float(done[1])
    return {"cpu_ms_per_audio_s": 1000 * (cpu1 - cpu0) / audio, "core_share": (cpu1 - cpu0) / wall,
            "wakeups_per_audio_s": (sw1 - sw0) / audio, "audio_s": audio, "wall_s": wall}


def run(info: Dict[str, Any], args: argparse.Namespace, tree: str) -> Dict[str, List[Dict[str, float]]]:
    text = text_for(args.seconds)
    results: Dict[str, List[Dict[str, float]]] = {}
    trees = [("", "")] + ([(tree, f"@{os.path.basename(tree)}")] if tree else [])
    runs = [("play", kind, t, suffix) for kind in PLAYING for t, suffix in trees
            if (kind.startswith("Player") or not t) and args.only != "idle"]
    runs += [("idle", kind, t, suffix) for kind in IDLE for t, suffix in trees
             if (kind == "Player" or not t) and args.only != "playing"]
    for round_no in range(args.rounds):
        shift = round_no % len(runs)
        for what, kind, t, suffix in runs[shift:] + runs[:shift]:
            name = f"{what} {kind}{suffix}"
            if what == "play":
                got = measure_playing(kind, info, text, t)
                line = (f"{got['cpu_ms_per_audio_s']:.1f} CPU ms per audio s, {100 * got['core_share']:.1f}% "
                        f"of a core, {got['wakeups_per_audio_s']:.0f} wake-ups per audio s")
            else:
                got = measure_idle(kind, info["url"], info["api_key"], args.window, t, script=__file__)
                line = f"{got['cpu_ms_per_min']:.1f} CPU ms/min, {got['wakeups_per_min']:.0f} wake-ups/min"
            results.setdefault(name, []).append(got)
            print(f"round {round_no + 1}: {name}: {line}", file=sys.stderr, flush=True)
    return results


def _times(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


def _median(rows: List[Dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(results: Dict[str, List[Dict[str, float]]]) -> str:
    lines: List[str] = []
    if "play minimal" in results:
        lines += _playing(results)
    if "idle sdk" in results:
        lines += _idle(results)
    return "\n".join(lines)


def _playing(results: Dict[str, List[Dict[str, float]]]) -> List[str]:
    base = results["play minimal"]
    lines = ["| client, playing | CPU ms per second of audio | share of a core | wake-ups per second of audio "
             "| CPU / minimal loop (median of per-round ratios) |", "|---|---|---|---|---|"]
    for name, rows in results.items():
        if not name.startswith("play "):
            continue
        ratios = [r["cpu_ms_per_audio_s"] / b["cpu_ms_per_audio_s"] for r, b in zip(rows, base)]
        lines.append(f"| {name[5:]} | {_median(rows, 'cpu_ms_per_audio_s'):.1f} "
                     f"| {100 * _median(rows, 'core_share'):.1f}% | {_median(rows, 'wakeups_per_audio_s'):.0f} "
                     f"| {statistics.median(ratios):.2f}x |")
    return lines + [""]


def _idle(results: Dict[str, List[Dict[str, float]]]) -> List[str]:
    sdk = results["idle sdk"]
    lines = ["| client, idle | CPU ms / min | wake-ups / min | / SDK iterating: CPU, wake-ups |",
             "|---|---|---|---|"]
    for name, rows in results.items():
        if not name.startswith("idle "):
            continue
        cpu, wakeups = _median(rows, "cpu_ms_per_min"), _median(rows, "wakeups_per_min")
        lines.append(f"| {name[5:]} | {cpu:.1f} | {wakeups:.0f} | {_times(cpu, _median(sdk, 'cpu_ms_per_min'))}, "
                     f"{_times(wakeups, _median(sdk, 'wakeups_per_min'))} |")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio played per client and round")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per idle client and round "
                        "(the keepalive pings come every 20 s)")
    parser.add_argument("--only", choices=("playing", "idle"), help="measure only these clients")
    compare = parser.add_mutually_exclusive_group()
    compare.add_argument("--compare", metavar="TREE", help="also the Player from this checkout")
    compare.add_argument("--compare-rev", metavar="REV", help="also the Player from this git revision")
    parser.add_argument("--play", nargs=4, help=argparse.SUPPRESS)  # internal: a playing client
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # internal: an idle client
    args = parser.parse_args(argv)
    if args.play:
        play_child(*args.play)
        return 0
    if args.child:
        if args.child[0].startswith("Player"):
            idle_player_child(*args.child[1:], keep_open=args.child[0] == "Player, device kept open")
        elif args.child[0] == "pyaudio stream":
            idle_stream_child()
        else:
            idle_child(*args.child)
        return 0
    from server_proc import export, spawn, stop
    from sink_clock import open_sink

    folder = Path(tempfile.mkdtemp(prefix="lmnt-player-cost-"))
    tree = os.path.abspath(args.compare) if args.compare else ""
    if args.compare_rev:
        tree = str(folder / args.compare_rev)
        os.makedirs(tree)
        export(args.compare_rev, tree)
    sink, _, _ = open_sink(folder)  # the children inherit the ALSA default device
    started = time.monotonic()
    try:
        info = spawn(ROOT, "--engine", "synthetic")
        try:
            results = run(info, args, tree)
        finally:
            stop(info)
    finally:
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(report(results))
    print(f"{args.rounds} rounds, {args.seconds:g} s of audio per playing client, {args.window:g} s per idle "
          f"client; {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
