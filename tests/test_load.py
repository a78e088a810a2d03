"""Load test (issue #6): 100 conversational sessions at once for 60 s, zero errors.

The real local server (``python -m lmnt_sync.server``, default engine Hibari)
runs in its own process, as users run it, so the 200 client threads of this
process do not compete with the server's event loop for one GIL, and the
server's CPU can be read apart from the client's. This process drives every
session through lmnt_sync's own blocking client, one caller thread per
session (plus the receiver thread each ``StreamingConnection`` starts), all
on one shared ``Speech``: that client under load is what this test proves.
Two threads per session fit a 2-core machine: callers mostly sleep (they
"play" the audio) and receivers mostly wait on their sockets; this process
uses about 0.1 core for all 100 sessions (figures in BENCHMARKS.md).

Each session behaves like one side of a spoken conversation: it sends a turn
of one or two sentences (word by word, or in one piece), flushes, reads the
audio and the word timings until its ``flush_complete``, "plays" the audio
(sleeps from the first frame for 60-100% of its duration), pauses as if the
user were answering, and repeats until the load window ends; then it
finishes, reads the tail until the server closes, and closes. Starts are
spread over ``RAMP_S``; every session runs until the same end, so all of them
are open together for ``SECONDS``. Formats vary by session (pcm_s16le 24 kHz,
ulaw 8 kHz, mp3, pcm_f32le 16 kHz, webm); one session in ten uses
``flush(wait=True)`` before reading (its turns are left out of the time to
first audio, which that call delays by design).

Asserted (no timing is): every session connected, completed every turn it
started and ended with the server's normal close; every turn's audio is
non-empty, decodes (FFmpeg, via PyAV) as the requested format at the
requested rate, is not silence, carries exactly the turn's words in its
timings, and lasts as long as those timings say (the last word ends inside
the audio, with at most ``MAX_TAIL_S`` after it); with pcm_s16le each
timing message lies inside the audio frame just before it; webm is checked
per session (one container per session). The server logged nothing but its
start and stop lines and exited 0; the conftest checks leave no thread or
socket behind.

Recorded, not asserted: time to first audio per turn, from sending ``flush``
to the first audio frame returned by ``recv()`` in the caller's thread
(p50/p95/p99/max, also per format), CPU of the server and of this process.
They are printed and written as JSON to ``tmp_path/load-results.json`` and,
if set, to the path in ``$LMNT_SYNC_LOAD_RESULTS``. ``LMNT_SYNC_LOAD_SESSIONS``
and ``LMNT_SYNC_LOAD_SECONDS`` change the load (defaults 100 and 60).
"""
import json
import os
import platform
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import av
import numpy as np

from lmnt_sync import Speech
from lmnt_sync.errors import ConnectionClosedOK
from server_kit import decode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSIONS = int(os.environ.get("LMNT_SYNC_LOAD_SESSIONS", "100"))
SECONDS = float(os.environ.get("LMNT_SYNC_LOAD_SECONDS", "60"))
RESULTS_ENV = "LMNT_SYNC_LOAD_RESULTS"
RAMP_S = 5.0  # session starts are spread evenly over this
HANG_S = 60.0  # a recv() that waits this long is a hang, reported as an error (not a speed limit)
MAX_TAIL_S = 1.5  # audio after the last word's end: Hibari's pause (~0.5 s) plus codec padding
SLACK_S = 0.05  # timing vs audio rounding (resampling, codec frames)

#: What a user of a voice agent hears: short replies, numbers, questions.
SENTENCES = [
    "Sure, I can help with that.",
    "What time works best for you?",
    "Your table for four is booked at seven thirty tonight.",
    "I found three flights to Lisbon on Friday morning.",
    "The cheapest one leaves at six and costs two hundred dollars.",
    "Would you like me to send the confirmation by email?",
    "Okay!",
    "Let me check that for you.",
    "It looks like your order shipped yesterday and should arrive on Tuesday.",
    "Is there anything else I can do for you today?",
    "The weather in Paris is sunny, with a high of 24 degrees.",
    "I am sorry, I did not catch that.",
    "Could you say the name of the street again, slowly?",
    "Your appointment with Doctor Lee is moved to 3:15 p.m. on the 12th.",
    "Thanks for waiting.",
    "Great, that is all set.",
]

#: (format, sample_rate, FFmpeg decoder, bytes per sample) by session index % 10.
#: LMNT's ulaw is G.711 mu-law after a WAV header (PROTOCOL.md), checked and cut by TurnDecoder.
FORMATS = [("pcm_s16le", 24000, "pcm_s16le", 2)] * 5 + [
    ("ulaw", 8000, "pcm_mulaw", 1),
    ("ulaw", 8000, "pcm_mulaw", 1),
    ("mp3", 24000, "mp3", 0),
    ("pcm_f32le", 16000, "pcm_f32le", 4),
    ("webm", 24000, None, 0),
]
VOICES = ["lily", "leah"]  # LMNT ids; both map to the default engine's (female) voice


# -- the server, in its own process ----------------------------------------------


class ServerProcess:
    """``python -m lmnt_sync.server --port 0`` in a child process, its output in a file."""

    def __init__(self, tmp_path, sessions: int) -> None:
        self.api_key = "load-test-key"
        self.log_path = tmp_path / "server.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        env.pop("LMNT_SERVER_API_KEY", None)
        argv = [sys.executable, "-m", "lmnt_sync.server", "--port", "0", "--api-key", self.api_key,
                "--data-dir", str(tmp_path / "voices"), "--max-sessions", str(max(128, sessions + 8))]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        self.pid = self.proc.pid
        self.url = self._wait_listening(60.0)

    def _wait_listening(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(r"listening on (http://\S+)", self.log())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (all its threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> Optional[int]:
        """SIGTERM (the server's clean stop); return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def rss_bytes(pid) -> int:
    """Resident memory of process ``pid`` ("self": this one), bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- one session ------------------------------------------------------------------


@dataclass
class Plan:
    """What session ``index`` does; derived from the index, so runs repeat."""

    index: int
    start: float  # monotonic
    stop: float  # no new turn from here on
    fmt: str = ""
    rate: int = 0
    codec: Optional[str] = None
    width: int = 0
    voice: str = ""
    word_by_word: bool = True
    wait_flush: bool = False

    def __post_init__(self) -> None:
        self.fmt, self.rate, self.codec, self.width = FORMATS[self.index % len(FORMATS)]
        self.voice = VOICES[self.index % len(VOICES)]
        self.word_by_word = self.index % 3 != 0
        self.wait_flush = self.index % 100 >= 90  # every format once per hundred


@dataclass
class Turn:
    text: str
    t_flush: float = 0.0
    t_first_audio: Optional[float] = None
    t_complete: Optional[float] = None
    nonce: Optional[int] = None
    audio: List[bytes] = field(default_factory=list)  # frames in arrival order (kept for webm only)
    words: List[Dict[str, Any]] = field(default_factory=list)
    seconds: Optional[float] = None  # decoded duration (None for webm: checked per session)


@dataclass
class SessionResult:
    plan: Plan
    connect_s: Optional[float] = None
    turns: List[Turn] = field(default_factory=list)
    closed_normally: bool = False
    stage: str = "waiting to start"
    error: Optional[str] = None


class TurnDecoder:
    """Decodes a session's audio turn by turn with FFmpeg, the way a player would."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ctx = None
        self.header_due = plan.fmt == "ulaw"
        if plan.codec is not None:
            self.ctx = av.CodecContext.create(plan.codec, "r")
            if plan.codec != "mp3":  # raw PCM carries no header: tell the decoder
                self.ctx.sample_rate = plan.rate
                self.ctx.layout = "mono"

    def decode(self, data: bytes) -> Tuple[int, float]:
        """Return (samples, peak in -1..1) of ``data``, which must decode at the plan's rate."""
        if self.ctx is None:
            return 0, 0.0
        if self.header_due:
            data, self.header_due = self.wav_body(data), False
        if self.plan.width:
            assert len(data) % self.plan.width == 0, f"{len(data)} bytes is not whole {self.plan.fmt} samples"
        packets = self.ctx.parse(data) if self.plan.codec == "mp3" else [av.Packet(data)]
        samples, peak = 0, 0.0
        for packet in packets:
            for frame in self.ctx.decode(packet):
                assert frame.sample_rate == self.plan.rate, f"decoded at {frame.sample_rate} Hz"
                array = frame.to_ndarray()
                if array.dtype.kind == "i":
                    array = array / 32768.0
                samples += frame.samples
                peak = max(peak, float(np.abs(array).max()) if array.size else 0.0)
        return samples, peak

    def wav_body(self, data: bytes) -> bytes:
        """Check the WAV header that starts a ulaw stream (mono 8-bit mu-law at the rate); return what follows."""
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"ulaw does not start with a WAV header: {data[:12]!r}"
        pos = 12
        while data[pos:pos + 4] != b"data":
            size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
            if data[pos:pos + 4] == b"fmt ":
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
                assert (tag, channels, rate, bits) == (7, 1, self.plan.rate, 8), \
                    f"WAV format tag {tag}, {channels} channels, {rate} Hz, {bits} bits"
            pos += 8 + size
        return data[pos + 8:]


def pick_turn(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.choice((1, 1, 2))))


def run_session(plan: Plan, speech: Speech, result: SessionResult) -> None:
    """Body of one caller thread: converse until ``plan.stop``; record any error."""
    rng = random.Random(plan.index)
    try:
        time.sleep(max(0.0, plan.start - time.monotonic()))
        result.stage = "connect"
        t0 = time.perf_counter()
        conn = speech.synthesize_streaming(plan.voice, format=plan.fmt, sample_rate=plan.rate,
                                           return_extras=True, connect_timeout=HANG_S)
        with conn:
            result.connect_s = time.perf_counter() - t0
            decoder = TurnDecoder(plan)
            while time.monotonic() < plan.stop:
                turn = Turn(pick_turn(rng))
                result.turns.append(turn)
                result.stage = f"turn {len(result.turns)} {turn.text!r}"
                converse_turn(conn, plan, turn, decoder)
                # Playing started with the first frame; webm's length per turn is its timings'.
                length = turn.seconds if turn.seconds is not None else turn.words[-1]["start"]
                _sleep_until(turn.t_first_audio + length * rng.uniform(0.6, 1.0), plan.stop)
                _sleep_until(time.perf_counter() + rng.uniform(0.3, 1.5), plan.stop)  # the user answers
            result.stage = "finish"
            conn.finish()
            tail = read_tail(conn, decoder)
            assert conn.request_id, "no ready message (request id) was received"
            result.stage = "close"
        result.closed_normally = True
        if plan.codec is None:  # webm: one container per session
            result.stage = "webm check"
            check_webm(plan, result.turns, tail)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported by the test
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result.error = (f"session {plan.index} ({plan.fmt}, {result.stage}): {type(exc).__name__}: {exc} "
                        f"[{os.path.basename(where.filename)}:{where.lineno}]")


def _sleep_until(when: float, stop: float) -> None:
    """Sleep until perf_counter() reaches ``when``, but not past ``stop`` (monotonic)."""
    delay = min(when - time.perf_counter(), stop - time.monotonic())
    if delay > 0:
        time.sleep(delay)


def converse_turn(conn, plan: Plan, turn: Turn, decoder: TurnDecoder) -> None:
    """Send one turn, read its audio and timings until its flush_complete, check them."""
    if plan.word_by_word:
        for word in turn.text.split():
            conn.append_text(word + " ")
    else:
        conn.append_text(turn.text)
    turn.t_flush = time.perf_counter()
    turn.nonce = conn.flush(wait=plan.wait_flush, timeout=HANG_S)
    spans = []  # pcm_s16le: (frame start s, frame end s) of each audio frame
    position = 0.0
    while True:
        message = conn.recv(timeout=HANG_S)
        if message["audio"]:
            if turn.t_first_audio is None:
                turn.t_first_audio = time.perf_counter()
            turn.audio.append(message["audio"])
            if plan.fmt == "pcm_s16le":
                end = position + len(message["audio"]) / (2 * plan.rate)
                spans.append((position, end))
                position = end
        elif message.get("type") == "timestamps":
            assert turn.audio, f"timings before any audio: {message}"
            if spans:
                check_frame_timings(spans[-1], message["timestamps"])
            turn.words.extend(message["timestamps"])
        elif message.get("type") == "flush_complete":
            assert message["nonce"] == turn.nonce, f"flush_complete {message['nonce']} for flush {turn.nonce}"
            turn.t_complete = time.perf_counter()
            break
        else:
            raise AssertionError(f"unexpected message in a turn: {message}")
    check_turn(plan, turn, decoder)


def check_frame_timings(span: Tuple[float, float], words: List[Dict[str, Any]]) -> None:
    """Timing messages describe the audio frame just sent (PROTOCOL.md 1.5)."""
    start, end = span
    for word in words:
        assert start - SLACK_S <= word["start"] and word["start"] + word["duration"] <= end + SLACK_S, \
            f"word {word} outside its frame [{start:.3f}, {end:.3f}] s"


def check_turn(plan: Plan, turn: Turn, decoder: TurnDecoder) -> None:
    """A turn's audio is there, decodes, is speech, and matches its word timings."""
    data = b"".join(turn.audio)
    assert data, "no audio in the turn"
    assert [w["text"] for w in turn.words] == turn.text.split(), \
        f"timings {[w['text'] for w in turn.words]} for text {turn.text!r}"
    starts = [w["start"] for w in turn.words]
    assert starts == sorted(starts) and starts[0] >= 0 and all(w["duration"] >= 0 for w in turn.words), \
        f"word timings out of order: {turn.words}"
    if decoder.ctx is None:
        return  # webm: checked per session (check_webm)
    turn.audio = []  # checked: do not hold ~5000 s of audio in memory
    samples, peak = decoder.decode(data)
    turn.seconds = samples / plan.rate
    last_end = max(w["start"] + w["duration"] for w in turn.words)
    assert last_end - SLACK_S <= turn.seconds <= last_end + MAX_TAIL_S, \
        f"{turn.seconds:.3f} s of audio for words ending at {last_end:.3f} s"
    assert peak > 0.05, f"the turn's audio is silence (peak {peak:.4f})"


def read_tail(conn, decoder: TurnDecoder) -> bytes:
    """After finish: read until the server's normal close; nothing was left unsaid."""
    tail = []
    while True:
        try:
            message = conn.recv(timeout=HANG_S)
        except ConnectionClosedOK:
            break
        assert message.get("type") == "audio", f"after finish, only codec tail audio may come: {message}"
        tail.append(message["audio"])
    data = b"".join(tail)
    if data and decoder.ctx is not None:
        decoder.decode(data)  # an mp3 encoder's last frames
    return data


def check_webm(plan: Plan, turns: List[Turn], tail: bytes) -> None:
    """The session's webm stream decodes whole, and lasts as long as its turns' timings."""
    rate, seconds, pcm = decode(b"".join(b"".join(t.audio) for t in turns) + tail, "webm", plan.rate)
    assert rate == plan.rate, f"webm declares {rate} Hz"
    ends = [max(w["start"] + w["duration"] for w in t.words) for t in turns]
    assert sum(ends) - SLACK_S <= seconds <= sum(ends) + MAX_TAIL_S * len(turns), \
        f"{seconds:.3f} s of webm for {len(turns)} turns whose words end at {ends}"
    assert np.abs(np.frombuffer(pcm, "<i2")).max() > 0.05 * 32768, "the webm audio is silence"


# -- the test ---------------------------------------------------------------------


def percentiles(values: List[float]) -> Dict[str, Any]:
    """Return n, p50, p95, p99, max (linear interpolation), in the values' unit."""
    xs = sorted(values)
    if not xs:
        return {"n": 0}

    def q(p: float) -> float:
        pos = (len(xs) - 1) * p
        low = int(pos)
        high = min(low + 1, len(xs) - 1)
        return round(xs[low] + (xs[high] - xs[low]) * (pos - low), 2)

    return {"n": len(xs), "p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(xs[-1], 2)}


def warm_up(speech: Speech) -> None:
    """Load the model and the codecs in the server before anything is measured."""
    for fmt in ("pcm_s16le", "mp3", "webm"):
        with speech.synthesize_streaming("lily", format=fmt, return_extras=True) as conn:
            conn.append_text("Hello, and welcome.")
            conn.flush(wait=True, timeout=HANG_S)


def git_commit() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Meter:
    """CPU and memory of the server, of this process and of the rest of the (shared) machine."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.wall0, self.cpu0 = time.monotonic(), time.process_time()
        self.server_cpu0, self.busy0 = server.cpu_seconds(), machine_busy_seconds()
        self.rss0 = {"server": server.rss_bytes(), "client": rss_bytes("self")}
        self.peak = dict(self.rss0)
        self.threads_peak = threading.active_count()
        self.series: List[List[float]] = []  # every ~5 s: [s since start, server MiB, client MiB]

    def sample(self) -> None:
        server, client = self.server.rss_bytes(), rss_bytes("self")
        self.peak["server"] = max(self.peak["server"], server)
        self.peak["client"] = max(self.peak["client"], client)
        self.threads_peak = max(self.threads_peak, threading.active_count())
        now = time.monotonic() - self.wall0
        if not self.series or now - self.series[-1][0] >= 5.0:
            self.series.append([round(now, 1), round(server / 2**20, 1), round(client / 2**20, 1)])

    def figures(self) -> Dict[str, Any]:
        wall = time.monotonic() - self.wall0
        cpu, server_cpu = time.process_time() - self.cpu0, self.server.cpu_seconds() - self.server_cpu0
        others = machine_busy_seconds() - self.busy0 - cpu - server_cpu
        mib = {k: [round(self.rss0[k] / 2**20, 1), round(self.peak[k] / 2**20, 1)] for k in self.rss0}
        return {
            "wall_s": round(wall, 1),
            "server_cpu_cores": round(server_cpu / wall, 3),
            "client_cpu_cores": round(cpu / wall, 3),  # this whole process: callers and receivers
            "other_processes_cpu_cores": round(others / wall, 3),  # the machine is shared
            "server_rss_mib_before_peak": mib["server"],
            "client_rss_mib_before_peak": mib["client"],
            "client_threads_peak": self.threads_peak,
            "rss_mib_series": self.series,
        }


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (/proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def test_100_conversations_for_60_s(tmp_path, capsys):
    """100 sessions converse for 60 s through lmnt_sync against the real server: zero errors."""
    server = ServerProcess(tmp_path, SESSIONS)
    results: List[SessionResult] = []
    try:
        with Speech(api_key=server.api_key, base_url=server.url) as speech:
            warm_up(speech)
            begin = time.monotonic() + 0.5
            begin_perf = time.perf_counter() + (begin - time.monotonic())  # the same instant, for turn times
            stop = begin + RAMP_S + SECONDS
            results = [SessionResult(Plan(i, start=begin + RAMP_S * i / SESSIONS, stop=stop))
                       for i in range(SESSIONS)]
            threads = [threading.Thread(target=run_session, args=(r.plan, speech, r),
                                        name=f"load-session-{r.plan.index}", daemon=True) for r in results]
            meter = Meter(server)
            for thread in threads:
                thread.start()
            give_up = stop + 2 * HANG_S
            while time.monotonic() < give_up:
                alive = [t for t in threads if t.is_alive()]
                if not alive:  # checked once: the last thread may end between two looks
                    break
                meter.sample()
                alive[0].join(1.0)
            measured = meter.figures()
            hung = [t.name for t in threads if t.is_alive()]
    finally:
        exit_code = server.stop()
    server_log = server.log()

    summary = summarize(results, begin_perf, measured)
    text = json.dumps(summary, indent=1)
    (tmp_path / "load-results.json").write_text(text)
    if os.environ.get(RESULTS_ENV):
        with open(os.environ[RESULTS_ENV], "w") as out:
            out.write(text + "\n")
    with capsys.disabled():
        print(f"\nload test: {report_line(summary)}\n  results: {tmp_path / 'load-results.json'}")

    errors = [r.error for r in results if r.error]
    assert not hung, f"sessions still running {2 * HANG_S:g} s after the end: {hung}"
    assert not errors, f"{len(errors)} of {SESSIONS} sessions failed:\n" + "\n".join(errors[:20])
    assert all(r.closed_normally and r.turns for r in results)
    assert exit_code == 0, f"the server exited with {exit_code}:\n{server_log}"
    unexpected = [line for line in server_log.splitlines() if not line.startswith("lmnt_sync.server: ")]
    assert not unexpected, "the server logged:\n" + "\n".join(unexpected[:40])


def summarize(results: List[SessionResult], begin_perf: float, measured: Dict[str, Any]) -> Dict[str, Any]:
    turns = [(r.plan, t) for r in results for t in r.turns if t.t_first_audio is not None]
    ttfa = [(t.t_first_audio - t.t_flush) * 1000 for plan, t in turns if not plan.wait_flush]
    by_format: Dict[str, List[float]] = {}
    for plan, t in turns:
        if not plan.wait_flush:
            by_format.setdefault(f"{plan.fmt}/{plan.rate}", []).append((t.t_first_audio - t.t_flush) * 1000)
    complete = [(t.t_complete - t.t_flush) * 1000 for plan, t in turns if plan.wait_flush and t.t_complete]
    return {
        "sessions": len(results),
        "seconds": SECONDS,
        "ramp_s": RAMP_S,
        "failed_sessions": sum(1 for r in results if r.error),
        "turns": sum(len(r.turns) for r in results),
        "turns_per_session_min": min((len(r.turns) for r in results), default=0),
        "ttfa_ms": percentiles(ttfa),  # flush sent -> first audio frame returned by recv()
        "ttfa_ms_by_format": {k: percentiles(v) for k, v in sorted(by_format.items())},
        "flush_wait_to_complete_ms": percentiles(complete),  # the flush(wait=True) sessions
        "connect_ms": percentiles([r.connect_s * 1000 for r in results if r.connect_s is not None]),
        "audio_s_decoded_not_webm": round(sum(t.seconds or 0.0 for _, t in turns), 1),
        **measured,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": git_commit(),
        # One row per turn: session, format, flush(wait=True)?, turn, flush time since the first
        # start (s), flush -> first audio (ms), flush -> flush_complete (ms), audio s (null for webm).
        "turn_log": [[r.plan.index, r.plan.fmt, r.plan.wait_flush, k, round(t.t_flush - begin_perf, 3),
                      round((t.t_first_audio - t.t_flush) * 1000, 2), round((t.t_complete - t.t_flush) * 1000, 2),
                      None if t.seconds is None else round(t.seconds, 3)]
                     for r in results for k, t in enumerate(r.turns)
                     if t.t_first_audio is not None and t.t_complete is not None],
    }


def report_line(summary: Dict[str, Any]) -> str:
    t = summary["ttfa_ms"]
    return (f"{summary['sessions']} sessions x {summary['seconds']:g} s, {summary['turns']} turns, "
            f"{summary['failed_sessions']} failed; flush -> first audio ms p50 {t.get('p50')} "
            f"p95 {t.get('p95')} p99 {t.get('p99')} max {t.get('max')}; CPU cores server "
            f"{summary['server_cpu_cores']} client {summary['client_cpu_cores']}; wall {summary['wall_s']} s")
