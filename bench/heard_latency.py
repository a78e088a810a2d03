"""What the listener waits for: from ``flush()`` to the first audible sample.

    python bench/heard_latency.py [--rounds 5] [--compare TREE | --compare-rev REV] [--json FILE]

Run from the repository root (5 rounds: about 3 minutes, twice that with a
compared server; prints Markdown).

Servers: ``bench/server_proc.py`` in its own process with every engine
loaded, from this tree and, with ``--compare``, from another checkout (a
path, or ``--compare-rev REV`` exported with ``git archive``), e.g. the
server before turns were trimmed to their first sound.

Clients, one at a time in this process, both playing through the tests'
real-time audio path into a private PulseAudio null sink whose monitor is
recorded (``sink_clock.py``):

* ``Player``: one ``lmnt_sync.Player(24000, close_device_after=None)``
  (otherwise defaults; its device stays open) for the whole run; per session
  ``Speech.synthesize_streaming(voice, format="pcm_s16le",
  sample_rate=24000, return_extras=True)`` given to ``player.play``; ``append_text`` then
  ``flush()``.
* ``Player, reopening``: the same with ``close_device_after=0``: the device
  is closed as soon as a turn has been heard, so every turn reopens it.
* ``minimal``: ``minimal_loop.py``: websocket-client in this thread writing
  each audio frame straight into one blocking pyaudio stream (pyaudio's
  defaults: PortAudio chooses the buffer size) opened for the whole run.

Each round, for every server x voice (``lily``: hibari, ``joe``: piper,
resampled to 24 kHz by the server) x client, in a rotated order: a new
session; turn 1 (*session start*): a sentence and a flush; once it has been
heard and 0.4 s more, turn 2 (*after a flush*): another sentence and a
flush. Per turn:

* **first byte**: flush -> the first audio frame in the client's hands
  (the Player's is seen through ``seen_connection.py``, a thin wrapper);
* **lead in the PCM**: silence before the first sound in the audio as
  received (sound: a 5 ms frame within 50 dB of the turn's loudest, the
  server's and tests/test_turn_onset.py's definition);
* **heard**: flush -> the first sound the sink played (same definition,
  over the 4 s of recording after the flush; ``t0`` from the 0.6 s before
  it). A turn counts only if the sink was silent in the 0.1 s before the
  flush.

Benchmark, not a test: nothing here passes or fails on a number.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import minimal_loop  # noqa: E402
from lmnt_sync.playback.audio_device import native_stderr_silenced  # noqa: E402
from lmnt_sync.server.joins import first_sound  # noqa: E402
from seen_connection import SeenConnection  # noqa: E402
from server_proc import export, spawn, stop  # noqa: E402
from sink_clock import RATE, Recorder, open_sink, sink_origin  # noqa: E402
from stats import percentile  # noqa: E402

__all__ = ["main"]

VOICES = {"lily": "hibari", "joe": "piper"}
#: Player clients -> close_device_after
PLAYERS = {"Player": None, "Player, reopening": 0.0}
CLIENTS = (*PLAYERS, "minimal")
TEXTS = [
    ("Seven green apples fell from the tree.", "Happy birthday to you, my friend."),
    ("Thanks for waiting, here is the answer.", "She sells sea shells by the shore."),
    ("Hello there, how are you today?", "Five friends came over for dinner."),
]
LOOK_S = 4.0  # seconds of recording after a flush searched for its first sound
QUIET_S = 0.1  # the sink must be silent this long before a flush for the turn to count
GAP_S = 0.4  # quiet time after a turn has been heard, before the next flush


def player_session(player: Any, info: Dict[str, Any], voice: str, texts: tuple) -> List[Dict[str, Any]]:
    """One session through the Player; returns the two turns' flush and first-byte times and PCM."""
    from lmnt_sync import Speech

    turns = []
    with Speech(api_key=info["api_key"], base_url=info["url"]) as speech:
        with speech.synthesize_streaming(voice, format="pcm_s16le", sample_rate=RATE,
                                          return_extras=True) as conn:
            seen = SeenConnection(conn)
            player.play(seen)
            for text in texts:
                seen.mark()
                conn.append_text(text)
                flushed = time.monotonic()
                conn.flush()
                seen.wait_taken(60)  # all the turn's audio is in the player
                player.wait_idle(timeout=60)
                turns.append({"flushed": flushed, "first_byte": seen.first, "pcm": bytes(seen.pcm)})
                time.sleep(GAP_S)
            conn.finish()
            player.wait(timeout=30)
    return turns


def minimal_session(stream: Any, info: Dict[str, Any], voice: str, texts: tuple) -> List[Dict[str, Any]]:
    """One session through the minimal loop; same figures as :func:`player_session`."""
    ws = minimal_loop.connect(info["url"], info["api_key"], voice, RATE)
    turns = []
    try:
        for nonce, text in enumerate(texts, 1):
            turns.append(minimal_loop.speak_turn(ws, stream, text, nonce))
            time.sleep(GAP_S + stream.get_output_latency())  # what the device holds plays out
    finally:
        ws.close()
    return turns


def heard_after(audio: np.ndarray, stamps: np.ndarray, flushed: float) -> Dict[str, Any]:
    """Seconds from ``flushed`` to the first sound the sink played, or why the turn does not count."""
    t0 = sink_origin(stamps, flushed)
    if t0 is None:
        return {"invalid": "recorder stalled"}
    at = int(round((flushed - t0) * RATE))
    quiet = int(QUIET_S * RATE)
    if at + int(LOOK_S * RATE) > len(audio) or at < quiet:
        return {"invalid": "outside the recording"}
    if np.abs(audio[at - quiet: at].astype(np.int32)).max() > 0:
        return {"invalid": "sound before the flush"}
    sound = first_sound(audio[at: at + int(LOOK_S * RATE)], RATE)
    if sound is None:
        return {"invalid": "nothing heard"}
    return {"heard": sound}


def run(servers: Dict[str, Dict[str, Any]], rounds: int) -> List[Dict[str, Any]]:
    """Every round: each server x voice x client (rotated) speaks one two-turn session."""
    import pyaudio

    from lmnt_sync import Player

    # Players silence ALSA's and JACK's complaints themselves.
    players = {name: Player(RATE, close_device_after=after) for name, after in PLAYERS.items()}
    with native_stderr_silenced():  # ALSA and JACK list every device they cannot open
        pa = pyaudio.PyAudio()
        stream = minimal_loop.open_stream(pa, RATE)
    combos = [(s, v, c) for s in servers for v in VOICES for c in CLIENTS]
    turns: List[Dict[str, Any]] = []
    try:
        for round_no in range(rounds):
            texts = TEXTS[round_no % len(TEXTS)]
            shift = round_no % len(combos)
            for server, voice, client in combos[shift:] + combos[:shift]:
                info = servers[server]
                if client in players:
                    got = player_session(players[client], info, voice, texts)
                else:
                    got = minimal_session(stream, info, voice, texts)
                for number, turn in enumerate(got, 1):
                    turn.update(server=server, voice=voice, client=client, turn=number, round=round_no)
                    turns.append(turn)
                print(f"round {round_no + 1}: {server} {voice} {client}", file=sys.stderr, flush=True)
    finally:
        for player in players.values():
            player.close()
        stream.close()
        pa.terminate()
    return turns


def analyse(turns: List[Dict[str, Any]], audio: np.ndarray, stamps: np.ndarray) -> None:
    """Add the figures (ms) to each turn; the PCM is dropped."""
    for turn in turns:
        pcm = np.frombuffer(turn.pop("pcm"), dtype="<i2")
        lead = first_sound(pcm, RATE) if len(pcm) else None
        turn["lead_ms"] = None if lead is None else 1000 * lead
        turn["first_byte_ms"] = None if turn["first_byte"] is None else 1000 * (turn["first_byte"] - turn["flushed"])
        heard = heard_after(audio, stamps, turn["flushed"])
        turn["heard_ms"] = 1000 * heard["heard"] if "heard" in heard else None
        turn["invalid"] = heard.get("invalid")


def report(turns: List[Dict[str, Any]], servers: List[str]) -> str:
    lines = ["| server | voice | turn | client | turns counted | first byte p50 ms | lead in the PCM p50 ms "
             "| **heard** p50 / max ms | heard - first byte p50 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for server in servers:
        for voice, engine in VOICES.items():
            for number, when in ((1, "session start"), (2, "after a flush")):
                for client in CLIENTS:
                    mine = [t for t in turns if (t["server"], t["voice"], t["turn"], t["client"])
                            == (server, voice, number, client)]
                    ok = [t for t in mine if t["heard_ms"] is not None and t["first_byte_ms"] is not None]
                    if not ok:
                        lines.append(f"| {server} | {voice} ({engine}) | {when} | {client} | 0/{len(mine)} "
                                     "| | | | |")
                        continue
                    heard = [t["heard_ms"] for t in ok]
                    first = [t["first_byte_ms"] for t in ok]
                    leads = [t["lead_ms"] for t in ok if t["lead_ms"] is not None]
                    gap = [t["heard_ms"] - t["first_byte_ms"] for t in ok]
                    lines.append(f"| {server} | {voice} ({engine}) | {when} | {client} | {len(ok)}/{len(mine)} "
                                 f"| {percentile(first, 0.5):.0f} | {percentile(leads, 0.5):.0f} "
                                 f"| {percentile(heard, 0.5):.0f} / {max(heard):.0f} | {percentile(gap, 0.5):.0f} |")
    invalid = sorted({t["invalid"] for t in turns if t["invalid"]})
    lines += ["", f"Turns not counted: {len(turns) - sum(1 for t in turns if t['heard_ms'] is not None)}"
              + (f" ({', '.join(invalid)})" if invalid else "") + "."]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    compare = parser.add_mutually_exclusive_group()
    compare.add_argument("--compare", metavar="TREE", help="also a server from this checkout")
    compare.add_argument("--compare-rev", metavar="REV", help="also a server from this git revision")
    parser.add_argument("--json", help="also write every turn to this file")
    parser.add_argument("--keep", action="store_true", help="keep the recording and logs (the folder is printed)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="lmnt-heard-"))
    trees = {"this tree": ROOT}
    if args.compare_rev:
        os.makedirs(folder / "tree")
        trees[args.compare_rev] = export(args.compare_rev, str(folder / "tree"))
    elif args.compare:
        trees[os.path.basename(os.path.abspath(args.compare))] = os.path.abspath(args.compare)
    sink, _, env = open_sink(folder)  # before PortAudio starts: the recording ALSA default device
    servers: Dict[str, Dict[str, Any]] = {}
    started = time.monotonic()
    try:
        for name, tree in trees.items():
            servers[name] = spawn(tree, "--engine", "hibari")
        recorder = Recorder(env, folder)
        time.sleep(1.0)  # the sink clock of the first flush is read from the recording before it
        turns = run(servers, args.rounds)
        time.sleep(LOOK_S)  # the last turn's window is recorded too
        audio, stamps = recorder.stop()
    finally:
        for info in servers.values():
            stop(info)
        sink.stop()
        if args.keep:
            print(f"recording and logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    analyse(turns, audio, stamps)
    print(report(turns, list(servers)))
    print(f"\n{args.rounds} rounds; {time.monotonic() - started:.0f} s.")
    if args.json:
        Path(args.json).write_text(json.dumps(turns, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
