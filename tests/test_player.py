"""Player: real playback through pyaudio into a recording, real-time ALSA device (see playkit)."""
import sys
import threading
import time

import pytest

from conftest import our_threads, socket_inodes, wait_until
from lmnt_sync import MissingDependencyError, PlaybackError
from lmnt_sync.callbacks import MainThreadExecutor
from lmnt_sync.player import Player
from playkit import RATE, assert_played_exactly, audio_out, pulse_sink  # noqa: F401 - fixtures

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


def test_words_fire_in_order_when_heard(speech, audio_out):
    """on_word gets each word in order, at about its start time after the first word."""
    heard = []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: heard.append((time.monotonic(), w))) as player:
        player.play(conn)
        conn.append_text(TEXT)
        conn.finish()
        player.wait(timeout=30)
    assert [w["text"] for _, w in heard] == TEXT.split()
    first_time, first = heard[0]
    for when, word in heard:
        late = (when - first_time) - (word["start"] - first["start"])
        assert abs(late) < 0.15, f"{word['text']!r} fired {late:+.3f} s off its timing"


def test_words_of_each_flush_follow_the_previous_flush(speech, audio_out):
    """Timings restart at each flush; the player still fires every word in spoken order."""
    heard = []
    with pcm_session(speech, return_extras=True) as conn, \
            Player(RATE, on_word=lambda w: heard.append((time.monotonic(), w["text"]))) as player:
        player.play(conn)
        conn.append_text("One two three. ")
        conn.flush()
        conn.append_text("Four five.")
        conn.finish()
        player.wait(timeout=30)
    assert [text for _, text in heard] == ["One", "two", "three.", "Four", "five."]
    gaps = [b[0] - a[0] for a, b in zip(heard, heard[1:])]
    assert min(gaps) > 0.1, f"words fired too close together: {gaps}"


def test_interrupt_silences_drops_and_resets_the_session(speech, audio_out):
    """interrupt() stops the sound at once, drops queued audio, and the session speaks on after it."""
    with pcm_session(speech) as conn, Player(RATE) as player:
        player.play(conn)
        conn.append_text(TEXT * 4)
        conn.flush()
        assert wait_until(lambda: len(audio_out.played()) > 0.5 * BYTES_PER_SECOND, timeout=10)
        before = len(audio_out.played())
        started = time.monotonic()
        player.interrupt()
        took = time.monotonic() - started
        time.sleep(0.3)
        after_interrupt = len(audio_out.played())
        conn.append_text("Done.")
        conn.flush(wait=True, timeout=10)
        player.wait_idle(timeout=10)
        final = len(audio_out.played())
        conn.finish()  # the session has ended, so leaving the block's wait() returns
    assert took < 0.1, f"interrupt() took {took:.3f} s"
    assert after_interrupt - before < 0.1 * BYTES_PER_SECOND, "audio kept playing after interrupt()"
    assert final - after_interrupt > 0.2 * BYTES_PER_SECOND, "speech after the interrupt was not played"
    assert final < 4 * BYTES_PER_SECOND, "the interrupted text was played anyway"


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

    def slow():
        yield first
        time.sleep(0.6)
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


def test_wait_returns_after_the_whole_tail_is_heard(pulse_sink, audio_out):
    """What the sink actually plays (its monitor, recorded with parec) holds the sound's last frame:
    wait() stops the device only once everything written has been heard, nothing cut off the end."""
    import subprocess

    import numpy as np

    def square(seconds, amplitude):
        return np.where((np.arange(int(RATE * seconds)) // 24) % 2 == 0, amplitude, -amplitude).astype("<i2")

    body, tail = square(0.5, 8000), square(0.02, 5000)  # the last 20 ms stand out by their amplitude
    recorder = subprocess.Popen(["parec", "--device=out.monitor", "--raw", "--format=s16le", f"--rate={RATE}",
                                 "--channels=1", "--latency-msec=5"], stdout=subprocess.PIPE, env=pulse_sink.env())
    try:
        time.sleep(0.3)  # the recording is running before the sound starts
        with Player(RATE) as player:
            player.play([body.tobytes() + tail.tobytes()])
            player.wait(10)
        time.sleep(0.3)  # anything played after wait() would be recorded too
    finally:
        recorder.terminate()
        raw = recorder.communicate(timeout=10)[0]
    heard = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(heard) == 8000)
    quiet = np.flatnonzero(np.abs(heard) == 5000)
    assert len(loud) > 0.9 * len(body), "the sound was not played"
    assert len(quiet) == len(tail) and quiet[0] > loud[-1], (
        f"heard {len(quiet) / RATE * 1000:.1f} ms of the sound's last {len(tail) / RATE * 1000:.0f} ms")


PLAY_A_TONE = """
import math, struct
from lmnt_sync import Player
tone = b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(12000))
with Player(24000) as player:
    player.write(tone)
    player.wait()
print("played")
"""


def test_a_player_outside_the_cli_prints_nothing(audio_out):
    """Opening the device in a plain script prints none of ALSA's or JACK's probing noise: the
    Player itself silences the C libraries while PortAudio starts."""
    import os
    import subprocess

    done = subprocess.run([sys.executable, "-c", PLAY_A_TONE], env=dict(os.environ, **audio_out.env),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "played\n", done.stderr
    assert done.stderr == ""
    assert len(audio_out.played().strip(b"\x00")) > 12000
