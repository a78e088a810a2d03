"""The player's pure parts: jitter buffer positions, word placement, device clock (no device)."""
import pytest

from lmnt_sync.playback.playbuffer import JitterBuffer
from lmnt_sync.playback.wordclock import PlayClock, WordSchedule

RATE = 100  # frames per second: 0.01 s per frame keeps the numbers readable


def words(*pairs):
    """Build timing entries from (text, start) pairs."""
    return [{"text": text, "start": start, "duration": 0.1} for text, start in pairs]


def placed(schedule):
    """Return (text, position) for every pending word, in firing order."""
    return [(w["text"], pos) for pos, _, w in schedule._pending]


@pytest.mark.parametrize("messages, expected", [
    # one segment, timings after their audio
    ([(100, words(("a", 0.0), ("b", 0.5))), (100, words(("c", 1.2)))],
     [("a", 0), ("b", 50), ("c", 120)]),
    # a flush restarts the clock: the new segment begins after the last stamped audio
    ([(100, words(("a", 0.0), ("b", 0.6))), (80, words(("c", 0.0), ("d", 0.3)))],
     [("a", 0), ("b", 60), ("c", 100), ("d", 130)]),
    # two one-word segments both starting at 0.0 still count as two segments
    ([(50, words(("a", 0.0))), (50, words(("b", 0.0)))], [("a", 0), ("b", 50)]),
])
def test_current_wire_timestamps_are_placed_per_segment(messages, expected):
    """Cumulative timings land on source frames, and a restart starts a new segment."""
    schedule, received = WordSchedule(RATE), 0
    for audio_frames, stamps in messages:
        received += audio_frames
        schedule.timestamps(stamps, received)
    assert placed(schedule) == expected


def test_legacy_durations_count_from_their_chunk():
    """Legacy timings are relative to the audio chunk they ride on."""
    schedule = WordSchedule(RATE)
    schedule.durations(words(("a", 0.0), ("b", 0.2)), 300)
    assert placed(schedule) == [("a", 300), ("b", 320)]


def test_due_returns_words_once_their_frame_plays_and_clear_forgets():
    """A word is due when the frame at its position has started; clear() drops the rest."""
    schedule = WordSchedule(RATE)
    schedule.timestamps(words(("a", 0.0), ("b", 0.5), ("c", 0.9)), 100)
    assert schedule.due(0) == []
    assert [w["text"] for w in schedule.due(51)] == ["a", "b"]
    schedule.clear(100)
    assert schedule.due(1000) == []


def test_play_clock_skips_inserted_silence():
    """Heard source position follows the device, pausing over silence blocks."""
    clock = PlayClock()
    clock.wrote(10, 0, 10)   # audio 0..10
    clock.wrote(10, 10, 0)   # silence (underrun)
    clock.wrote(10, 10, 10)  # audio 10..20
    assert clock.heard(latency_frames=25) == 5
    assert clock.heard(latency_frames=15) == 10
    assert clock.heard(latency_frames=5) == 15
    assert clock.drained() == 20


def test_jitter_buffer_pads_with_silence_and_keeps_positions():
    """take() returns full blocks padded with zeros; clear() moves the head past what it dropped."""
    buffer = JitterBuffer(frame_bytes=2)
    buffer.push(b"\x01\x02\x03")  # one and a half frames
    buffer.push(b"\x04")
    block, start, audio = buffer.take(3)
    assert (block, start, audio) == (b"\x01\x02\x03\x04\x00\x00", 0, 2)
    buffer.push(b"\x05\x06" * 4)
    assert buffer.clear() == 4 and buffer.head == buffer.tail == 6
