"""Every streaming format x sample rate over the websocket decodes to the right audio."""
import time

import pytest

from lmnt_sync.codecs import SAMPLE_RATES, STREAMING_FORMATS
from lmnt_sync.server import LocalServer
from server_kit import close, connect, current_init, decode, onsets, read, send, synthetic_seconds

TEXT = "Formats are checked here, one by one. Every pair must decode."
# Encoders may add a little silence: mp3 frames/encoder delay, Opus pre-skip,
# resampler filter tails. Never less audio than was spoken.
SLACK_SECONDS = 0.25


@pytest.fixture(scope="module")
def server():
    """A synthetic-engine server for this module."""
    with LocalServer(engine="synthetic") as srv:
        yield srv


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_format_and_rate_decode_with_matching_duration(server, fmt, sample_rate):
    """PyAV decodes the session audio at the asked rate; its length matches the timestamps."""
    ws = connect(server, current_init(server, voice="synth", format=fmt, sample_rate=sample_rate))
    send(ws, {"type": "text", "text": TEXT}, {"type": "finish"})
    transcript = read(ws)
    close(ws)
    rate, seconds, _ = decode(transcript.audio, fmt, sample_rate)
    stamps = [w for m in transcript.messages("type", "timestamps") for w in m["timestamps"]]
    spoken = synthetic_seconds(TEXT)
    assert rate == sample_rate
    assert [w["text"] for w in stamps] == TEXT.split()
    assert stamps[-1]["start"] + stamps[-1]["duration"] <= seconds
    assert spoken - 0.01 <= seconds <= spoken + SLACK_SECONDS


@pytest.mark.parametrize("alias, fmt", [("raw", "pcm_s16le"), ("mulaw", "ulaw")])
def test_legacy_format_aliases(server, alias, fmt):
    """Legacy sessions may ask for raw (16-bit PCM) and mulaw (ulaw)."""
    ws = connect(server, {"X-API-Key": server.api_key, "voice": "synth", "format": alias})
    send(ws, {"text": "Alias check."}, {"eof": True})
    transcript = read(ws)
    close(ws)
    rate, seconds, _ = decode(transcript.audio, fmt, 8000 if fmt == "ulaw" else 24000)
    assert rate == (8000 if fmt == "ulaw" else 24000)
    assert abs(seconds - synthetic_seconds("Alias check.")) < SLACK_SECONDS


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_timestamps_match_where_words_sound_across_an_idle_drain(server, fmt):
    """Each word's 1.2 start is where its burst begins, also after the encoder drained mid-turn."""
    ws = connect(server, current_init(server, voice="synth", format=fmt, sample_rate=8000))
    send(ws, {"type": "text", "text": "First sentence here. "})
    transcript = read(ws, until="timestamps")
    time.sleep(0.05)  # the speaker runs dry and drains the encoder (mp3/webm pad with silence)
    send(ws, {"type": "text", "text": "Second one. "}, {"type": "finish"})
    read(ws, transcript=transcript)
    close(ws)
    _, seconds, pcm = decode(transcript.audio, fmt, 8000)
    heard = onsets(pcm, round(len(pcm) / 2 / seconds))
    starts = [w["start"] for m in transcript.messages("type", "timestamps") for w in m["timestamps"]]
    assert len(heard) == len(starts) == 5
    # Compare relative to the first word: codecs may delay the whole stream.
    for onset, start in zip(heard, starts):
        assert abs((onset - heard[0]) - (start - starts[0])) < 0.02
