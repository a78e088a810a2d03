"""Player: real playback through pyaudio into a recording, real-time ALSA device (see playkit)."""
import os
import sys
import threading
import time

import pytest

from conftest import our_threads, socket_inodes, wait_until
from lmnt_sync import ConfigurationError, MissingDependencyError, PlaybackError
from lmnt_sync.playback.callbacks import MainThreadExecutor
from lmnt_sync.playback.player import Player
from playkit import RATE, AudioOut, PulseSink, assert_played_exactly, noise

BYTES_PER_SECOND = 2 * RATE
TEXT = "Hello there world, this is a test of live playback."


def pcm_session(speech, **options):
    """Open a synthetic-voice PCM session at the player's rate."""
    return speech.synthesize_streaming("synth", format="pcm_s16le", sample_rate=RATE, **options)


def recording(conn, into):
    """Yield the session's messages, keeping a copy of their audio in ``into``."""
    for message in conn:
        into += message["audio"]
        yield message


def player_threads():
    """Return the live player threads."""
    return our_threads("lmnt-sync-player")


def test_plays_every_received_byte_in_about_real_time(speech, audio_out):
    """The device receives exactly the PCM the session sent, and playing it takes real time."""
    received = bytearray()
    with pcm_session(speech) as conn, Player(RATE) as player:
        start = time.monotonic()
        player.play(recording(conn, received))
        conn.append_text(TEXT)
        conn.finish()
        player.wait(timeout=30)
        elapsed = time.monotonic() - start
    duration = len(received) / BYTES_PER_SECOND
    assert duration > 1.0
    assert_played_exactly(audio_out.played(), bytes(received))
    assert elapsed >= 0.8 * duration, f"{duration:.2f} s of audio played in {elapsed:.2f} s"


def audio_position(seconds):
    """Byte offset of ``seconds`` into the speech, less one sample for the rounding of timings."""
    return round(seconds * RATE) * 2 - 2


def device_bytes(audio_out):
    """Bytes written to the device so far (the recordings' size)."""
    return audio_out.size()


def test_words_fire_in_order_when_heard(speech, audio_out):
    """on_word gets each word in order, never before its audio has reached the device.

    Measured in bytes of the recording, not in seconds, so a busy machine cannot fail it; how
    close to the sound a word fires is a latency figure for the benchmarks.
    """
    heard = []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: heard.append((device_bytes(audio_out), w))) as player:
        player.play(conn)
        conn.append_text(TEXT)
        conn.finish()
        player.wait(timeout=30)
    assert [w["text"] for _, w in heard] == TEXT.split()
    for reached, word in heard:  # the speech starts at the device's first byte (no lead-in)
        assert reached >= audio_position(word["start"]), f"{word['text']!r} fired before its audio"


def test_words_of_each_flush_follow_the_previous_flush(speech, audio_out):
    """Timings restart at each flush; the player still fires every word in spoken order, each
    once its audio (placed after the previous flush's audio) has reached the device."""
    heard = []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: heard.append((device_bytes(audio_out), w))) as player:
        player.play(conn)
        conn.append_text("One two three. ")
        conn.flush()
        conn.append_text("Four five.")
        conn.finish()
        player.wait(timeout=30)
    assert [w["text"] for _, w in heard] == ["One", "two", "three.", "Four", "five."]
    assert heard[3][1]["start"] < heard[2][1]["start"]  # the timings restarted at the flush
    # The synthetic engine's first turn: a burst of 60 ms + 40 ms per character and a 50 ms gap per word.
    turn_one = sum(int((0.060 + 0.040 * len(word)) * RATE) + int(0.050 * RATE) for word in ["One", "two", "three."])
    for index, (reached, word) in enumerate(heard):
        # Silence the player inserts between the turns only moves the second turn later.
        offset = 2 * turn_one if index >= 3 else 0
        assert reached >= offset + audio_position(word["start"]), f"{word['text']!r} fired before its audio"


def test_interrupt_silences_drops_and_resets_the_session(speech, audio_out):
    """interrupt() stops the sound, drops queued audio, and the session speaks on after it (how
    fast it silences the device is a latency figure for the benchmarks, not checked here)."""
    with pcm_session(speech) as conn, Player(RATE) as player:
        player.play(conn)
        conn.append_text(TEXT * 4)
        conn.flush()
        assert wait_until(lambda: len(audio_out.played()) > 0.5 * BYTES_PER_SECOND, timeout=10)
        player.interrupt()
        after_interrupt = device_bytes(audio_out)
        conn.append_text("Done.")
        conn.flush(wait=True, timeout=10)
        player.wait_idle(timeout=10)
        final = audio_out.played()
        conn.finish()  # the session has ended, so leaving the block's wait() returns
    # After interrupt() returned, the device got only the new sentence (one 260 ms burst) and
    # silence: nothing of the interrupted text, however slow the machine.
    spoken_after = final[after_interrupt:].strip(b"\x00")
    assert 0.2 * BYTES_PER_SECOND < len(spoken_after) < 0.4 * BYTES_PER_SECOND, \
        f"{len(spoken_after) / BYTES_PER_SECOND:.2f} s of speech after interrupt()"
    assert len(final) < 4 * BYTES_PER_SECOND, "the interrupted text was played anyway"


class Recording:
    """A session played as the player plays a session (recv, reset, wake, wait_taken), keeping a
    copy of the audio the player takes in ``received``."""

    def __init__(self, conn, received):
        self._conn, self._received = conn, received

    def recv(self, timeout=None, *, cancelled=None):
        message = self._conn.recv(timeout, cancelled=cancelled)
        self._received += message["audio"]
        return message

    def reset(self):
        self._conn.reset()

    def wake(self):
        self._conn.wake()

    def wait_taken(self, timeout=None):
        self._conn.wait_taken(timeout)


class SlowHandOver(Recording):
    """A session whose messages reach the player's feed thread only once someone asks
    ``wait_taken()``: the slowest hand-over a busy machine can give, made deterministic."""

    def __init__(self, conn, received):
        super().__init__(conn, received)
        self._gate = threading.Event()

    def recv(self, timeout=None, *, cancelled=None):
        message = super().recv(timeout, cancelled=cancelled)
        self._gate.wait(60)  # bounded: before the fix nobody opened it
        return message

    def wait_taken(self, timeout=None):
        self._gate.set()
        super().wait_taken(timeout)

    def open(self):
        self._gate.set()


def test_wait_idle_after_flush_wait_hears_the_whole_turn_however_slow_the_hand_over(speech, audio_out):
    """flush(wait=True) returns once the turn's audio has arrived, not once the player's feed
    thread has taken it: wait_idle() must not take a quiet device for the end of the turn."""
    received = bytearray()
    with pcm_session(speech) as conn, Player(RATE) as player:
        slow = SlowHandOver(conn, received)
        player.play(slow)
        conn.append_text(TEXT)
        conn.flush(wait=True, timeout=30)
        try:
            player.wait_idle(timeout=30)
            played = audio_out.played()
        finally:
            slow.open()
        conn.finish()
    assert len(received) > BYTES_PER_SECOND
    assert_played_exactly(played, bytes(received))


def test_interrupt_abandons_a_plain_iterable(audio_out):
    """A plain iterable source is dropped on interrupt(); the player stays usable."""
    tone = b"\x10\x20" * RATE  # one second

    def chunks():
        for _ in range(20):
            yield tone

    with Player(RATE) as player:
        player.play(chunks())
        assert wait_until(lambda: len(audio_out.played()) > 0.3 * BYTES_PER_SECOND, timeout=10)
        player.interrupt()
        player.wait(timeout=5)
        assert len(audio_out.played()) < 3 * BYTES_PER_SECOND


def test_underrun_plays_silence_not_garbage(audio_out):
    """A source that stalls longer than the pre-roll leaves zeros between its chunks, nothing else."""
    first, second = b"\x11\x22" * (RATE // 4), b"\x33\x44" * (RATE // 4)

    def silence_after_first():
        played = audio_out.played()
        at = played.find(first)
        return at >= 0 and len(played) > at + len(first)  # the player has noticed the stall

    def slow():
        yield first
        assert wait_until(silence_after_first, timeout=30), "the player did not fill the gap with silence"
        yield second

    with Player(RATE, preroll=0.1) as player:
        player.play(slow())
        player.wait(timeout=10)
    played = audio_out.played()
    gap = played[played.find(first) + len(first):played.find(second)]
    assert played.find(first) >= 0 and played.find(second) > played.find(first)
    assert gap and not gap.strip(b"\x00")
    assert not played.replace(first, b"").replace(second, b"").strip(b"\x00")


def test_push_style_write_plays_in_order(audio_out):
    """write() queues PCM from the caller's thread; wait() returns once it has been heard."""
    chunks = [bytes([n, n]) * 2400 for n in range(1, 6)]
    with Player(RATE) as player:
        for chunk in chunks:
            player.write(chunk)
        player.wait(timeout=10)
    assert_played_exactly(audio_out.played(), b"".join(chunks))


def test_callbacks_run_on_the_callers_executor(speech, audio_out):
    """With callback_executor, on_word runs where the executor runs it (here: this thread)."""
    executor, threads = MainThreadExecutor(), []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: threads.append(threading.current_thread()),
                   callback_executor=executor) as player:
        player.play(conn)
        conn.append_text("Three short words.")
        conn.finish()
        player.wait(timeout=10)
    assert threads == []
    assert executor.run_pending() == 3
    assert threads == [threading.current_thread()] * 3


def test_close_releases_the_device_and_threads(audio_out):
    """close() mid-playback ends the player threads and closes the device's sockets."""
    before = socket_inodes()
    player = Player(RATE)
    player.play([b"\x01\x02" * RATE * 5])
    assert wait_until(lambda: len(audio_out.played()) > 0, timeout=10)
    player.close()
    player.close()  # idempotent
    assert player.closed
    assert not player_threads()
    assert wait_until(lambda: socket_inodes() <= before, timeout=5)


def test_close_when_done_releases_everything_by_itself(audio_out):
    """play(..., close_when_done=True) closes the player once the source has been heard."""
    player = Player(RATE)
    player.play([b"\x01\x02" * (RATE // 2)], close_when_done=True)
    assert wait_until(lambda: player.closed, timeout=10)
    assert wait_until(lambda: not player_threads(), timeout=5)
    player.close()


def pulse_streams():
    """PulseAudio client threads (``threaded-ml``) in this process: one per open ALSA stream."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                count += comm.read().strip() == "threaded-ml"
        except FileNotFoundError:  # that thread has just ended
            pass
    return count


def recordings(audio_out):
    """What each opening of the device recorded, leaving out empty ones: with close_device_after=0
    the stream the constructor opened can close before the first write reaches it."""
    return [data for data in (path.read_bytes() for path in audio_out.files()) if data]


def device_closed(sink):
    """Wait until this process has no stream open (its own threads, then the sink's clients)."""
    return wait_until(lambda: pulse_streams() == 0, timeout=30) and sink.clients_of(os.getpid()) == 0


def test_an_idle_device_is_closed_and_reopened_for_the_next_turn(speech, audio_out, pulse_sink):
    """Idle for close_device_after (its default), the player closes its stream; the next turn
    reopens it. Each opening of the device records a file of its own: the first holds the first
    turn exactly, the second the second, and the second turn's words fire once their audio (after
    the reopen) has reached the device."""
    received, heard = bytearray(), []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: heard.append((device_bytes(audio_out), w))) as player:
        player.play(Recording(conn, received))
        conn.append_text("One two three. ")
        conn.flush(wait=True, timeout=30)
        player.wait_idle(timeout=30)
        first = bytes(received)
        assert device_closed(pulse_sink), "the idle player kept its device open"
        conn.append_text("Four five.")
        conn.flush(wait=True, timeout=30)
        player.wait_idle(timeout=30)
        second = bytes(received[len(first):])
        assert pulse_streams() == 1  # reopened, and kept open for the next turn
        conn.finish()
    files = audio_out.files()
    assert len(files) == 2, f"{len(files)} openings of the device recorded"
    assert_played_exactly(files[0].read_bytes(), first)
    assert_played_exactly(files[1].read_bytes(), second)
    assert [w["text"] for _, w in heard] == ["One", "two", "three.", "Four", "five."]
    reopened_at = files[0].stat().st_size  # the second turn's audio starts the second recording
    for index, (reached, word) in enumerate(heard):
        offset = reopened_at if index >= 3 else 0
        assert reached >= offset + audio_position(word["start"]), f"{word['text']!r} fired before its audio"


def test_interrupt_and_close_with_the_device_closed_leave_nothing_behind(audio_out, pulse_sink):
    """With close_device_after=0 the stream closes as soon as the device is idle: after a drain
    and after an interrupt. interrupt() and close() while it is closed return, and leave no
    thread, stream or socket behind; audio written after each is played from a reopened device."""
    before = socket_inodes()
    tone, long_tone = b"\x11\x22" * (RATE // 4), b"\x33\x44" * (RATE * 5)
    player = Player(RATE, close_device_after=0)
    try:
        player.write(tone)
        player.wait(timeout=10)
        assert device_closed(pulse_sink)
        player.interrupt()  # nothing plays: returns at once
        first_turn = device_bytes(audio_out)
        player.write(long_tone)
        assert wait_until(lambda: device_bytes(audio_out) > first_turn + 0.3 * BYTES_PER_SECOND, timeout=10)
        player.interrupt()
        player.wait(timeout=5)
        assert device_closed(pulse_sink), "the device stayed open after interrupt()"
        player.interrupt()
        player.write(tone)
        player.wait(timeout=10)
        assert device_closed(pulse_sink)
    finally:
        player.close()
    assert player.closed and not player_threads() and pulse_streams() == 0
    assert wait_until(lambda: socket_inodes() <= before, timeout=5)
    files = recordings(audio_out)
    assert len(files) == 3, f"{len(files)} openings of the device recorded"
    assert_played_exactly(files[0], tone)
    cut = files[1].strip(b"\x00")
    assert 0.3 * BYTES_PER_SECOND < len(cut) < len(long_tone) and long_tone.startswith(cut)
    assert_played_exactly(files[2], tone)


def test_a_device_gone_while_closed_surfaces_as_playback_error(tmp_path, monkeypatch):
    """The sound server goes away while the idle player's stream is closed: the next audio's
    reopen fails, and wait() raises PlaybackError; close() leaves no thread behind."""
    folder = tmp_path / "gone"
    folder.mkdir()
    sink = PulseSink(folder).start()  # a sink of its own, for this test to stop
    try:
        for name, value in AudioOut(sink, tmp_path).env.items():
            monkeypatch.setenv(name, value)
        player = Player(RATE, close_device_after=0)
        try:
            player.write(b"\x11\x22" * (RATE // 4))
            player.wait(timeout=10)
            assert device_closed(sink)
            sink.stop()
            player.write(b"\x11\x22" * (RATE // 4))
            with pytest.raises(PlaybackError, match="could not open the audio output device"):
                player.wait(timeout=10)
        finally:
            player.close()
        assert player.closed and not player_threads()
    finally:
        sink.stop()


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), "5", True])
def test_close_device_after_must_be_none_or_seconds(audio_out, value):
    """A bad close_device_after raises ConfigurationError naming it, before any device opens."""
    with pytest.raises(ConfigurationError, match="close_device_after"):
        Player(RATE, close_device_after=value)
    assert not player_threads()


def test_source_errors_surface_from_wait(speech, audio_out):
    """A session that fails (unknown voice) makes wait() raise the server's error, once."""
    from lmnt_sync import SessionError

    conn = speech.synthesize_streaming("no-such-voice", format="pcm_s16le", sample_rate=RATE)
    with conn, Player(RATE) as player:
        player.play(conn)
        with pytest.raises(SessionError):
            player.wait(timeout=10)
        player.wait(timeout=5)


def test_missing_pyaudio_names_the_extra(monkeypatch):
    """Without pyaudio, Player raises MissingDependencyError naming the extra and portaudio19-dev."""
    monkeypatch.setitem(sys.modules, "pyaudio", None)
    with pytest.raises(MissingDependencyError) as info:
        Player(RATE)
    assert "lmnt-sync[play]" in str(info.value) and "portaudio19-dev" in str(info.value)


def test_unknown_device_raises_playback_error(audio_out):
    """An output device index that does not exist raises PlaybackError and leaves no thread."""
    with pytest.raises(PlaybackError):
        Player(RATE, device_index=999)
    assert not player_threads()


def record_playback(pulse_sink, pcm):
    """Play ``pcm`` while parec records the sink's monitor; return the recording once 300 ms
    beyond wait() have been recorded (anything played after wait() returned would be in them)."""
    import subprocess

    recorder = subprocess.Popen(["parec", "--device=out.monitor", "--raw", "--format=s16le", f"--rate={RATE}",
                                 "--channels=1", "--latency-msec=5"], stdout=subprocess.PIPE, env=pulse_sink.env())
    recorded = bytearray()

    def record():
        for chunk in iter(lambda: recorder.stdout.read1(4096), b""):
            recorded.extend(chunk)

    reader = threading.Thread(target=record)
    reader.start()
    try:
        assert wait_until(lambda: len(recorded) > 0, timeout=30), "parec recorded nothing"
        with Player(RATE) as player:
            player.play([pcm])
            player.wait(10)
        after_wait = len(recorded)
        assert wait_until(lambda: len(recorded) > after_wait + 0.3 * BYTES_PER_SECOND, timeout=30)
    finally:
        recorder.terminate()
        recorder.wait(10)
        reader.join(10)
    return bytes(recorded)


def test_wait_returns_after_the_whole_tail_is_heard(pulse_sink, audio_out, capfd):
    """What the sink actually plays (its monitor, recorded with parec) holds the sound's last frame:
    wait() stops the device only once everything written has been heard, nothing cut off the end.

    A run during which ALSA reported an underrun (the device starved on a busy machine, losing
    audio whatever the player does) proves nothing either way, so such a run is played again.
    """
    import numpy as np

    def square(seconds, amplitude):
        return np.where((np.arange(int(RATE * seconds)) // 24) % 2 == 0, amplitude, -amplitude).astype("<i2")

    body, tail = square(0.5, 8000), square(0.02, 5000)  # the last 20 ms stand out by their amplitude
    for _ in range(10):
        capfd.readouterr()
        raw = record_playback(pulse_sink, body.tobytes() + tail.tobytes())
        if "underrun occurred" not in capfd.readouterr().err:
            break
    else:
        pytest.fail("the device underran in every one of 10 runs")
    heard = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(heard) == 8000)
    quiet = np.flatnonzero(np.abs(heard) == 5000)
    assert len(loud) > 0.9 * len(body), "the sound was not played"
    assert len(quiet) == len(tail) and quiet[0] > loud[-1], (
        f"heard {len(quiet) / RATE * 1000:.1f} ms of the sound's last {len(tail) / RATE * 1000:.0f} ms")


PLAY_A_TONE_TWICE = """
import math, struct, sys
from lmnt_sync import Player
tone = b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(12000))
with Player(24000, close_device_after=0) as player:
    player.write(tone)
    player.wait()
    print("played", flush=True)
    sys.stdin.readline()  # the test has seen the device closed
    player.write(tone)
    player.wait()
print("played again")
"""


def test_a_player_outside_the_cli_prints_nothing(audio_out, pulse_sink):
    """Opening the device in a plain script prints none of ALSA's or JACK's probing noise: the
    Player itself silences the C libraries while PortAudio starts. Reopening the device after an
    idle pause prints nothing either."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", PLAY_A_TONE_TWICE], env=dict(os.environ, **audio_out.env),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "played\n"
        assert wait_until(lambda: pulse_sink.clients_of(child.pid) == 0, timeout=30), "the device stayed open"
        out, err = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0 and out == "played again\n", err
    assert noise(err) == []
    files = recordings(audio_out)
    assert len(files) == 2 and all(len(data.strip(b"\x00")) > 12000 for data in files)


STARVE_THE_OUTPUT_THREAD = """
import logging, sys, threading, time
from lmnt_sync import Player
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(name)s: %(message)s")
heard = threading.Event()
word = {"text": "now", "start": 0.1, "duration": 0.1}
with Player(24000, on_word=lambda w: heard.set()) as player:
    player.play([{"type": "audio", "audio": bytes(24000 * 2 * 3), "durations": [word]}])
    assert heard.wait(30), "the first word was never heard"
    # A fault, not a wait: this thread keeps the GIL for 1.5 s (far longer than the device's
    # buffer), so the output thread cannot write and the device runs dry: an ALSA underrun.
    sys.setswitchinterval(1.5)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        pass
    sys.setswitchinterval(0.005)
    player.wait()
print("played")
"""


def test_an_underrun_while_playing_is_logged_not_printed(audio_out):
    """ALSA reports an underrun during playback through the log (DEBUG, lmnt_sync.playback), not
    as an 'ALSA lib ... underrun occurred' line on the program's stderr."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", STARVE_THE_OUTPUT_THREAD], env=dict(os.environ, **audio_out.env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.endswith("played\n"), done.stdout + done.stderr
    assert "underrun occurred" not in done.stderr and noise(done.stderr) == [], done.stderr
    logged = [line for line in done.stdout.splitlines() if line.startswith("lmnt_sync.playback: ALSA ")]
    assert any(line.endswith("(snd_pcm_recover) underrun occurred") for line in logged), done.stdout


def test_an_alsa_message_is_filled_in_only_when_its_first_argument_is_a_string():
    """The handler reads ALSA's first variable argument as a string only where the format says so."""
    import ctypes

    from lmnt_sync.playback.alsa_errors import _message

    word = ctypes.create_string_buffer(b"underrun")
    address = ctypes.addressof(word)
    cases = {b"%s occurred": b"underrun occurred", b"100%% %s": b"100%% underrun", b"%-9s!": b"underrun!",
             b"card %d: %s": b"card %d: %s", b"%*s %s": b"%*s %s", b"%.*s": b"%.*s", b"plain": b"plain", b"%": b"%"}
    for fmt, expected in cases.items():
        assert _message(fmt, address) == expected, fmt
    assert _message(b"%s occurred", None) == b"%s occurred"
