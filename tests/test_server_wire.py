"""Sans-I/O tests of the server's wire rules: generation detection, parsing, shapes, timings."""
import json

import pytest

from lmnt_sync.server.apierror import ApiError, api_version, rest_error_body
from lmnt_sync.server.engines.base import SpeechChunk, WordTiming
from lmnt_sync.server.timeline import Timeline
from lmnt_sync.server.wire import (
    Finish,
    Flush,
    Generation,
    Reset,
    Text,
    ack_frame,
    detect_generation,
    error_frame,
    parse_command,
    parse_init,
    redact,
    timings_frame,
)

DETECTION_TABLE = [
    ({"lmnt-version": "1.2", "voice": "v"}, Generation.CURRENT),
    ({"lmnt-version": "1.1", "voice": "v"}, Generation.CURRENT),
    ({"type": "init", "voice": "v"}, Generation.CURRENT),
    ({"lmnt-version": "1.0", "voice": "v"}, Generation.LEGACY),
    ({"protocol_version": 2, "voice": "v"}, Generation.COMMAND),
    ({"protocol_version": "2", "voice": "v"}, Generation.COMMAND),
    ({"voice": "v", "send_extras": False}, Generation.LEGACY),
]


@pytest.mark.parametrize("init, generation", DETECTION_TABLE)
def test_generation_is_detected_from_the_init_message(init, generation):
    """The init message alone tells the three protocol generations apart."""
    assert detect_generation(init) is generation


VERSION_TABLE = [(None, None), ("", None), ("1.0", None), ("1.1", "1.1"), ("1.2", "1.2"),
                 ("1.3", "1.2"), ("2025-09-25", "1.2"), ("banana", "1.2")]


@pytest.mark.parametrize("header, version", VERSION_TABLE)
def test_version_policy(header, version):
    """Missing or <1.1 means legacy; 1.1 is 1.1; newer or unparseable is served as 1.2."""
    assert api_version(header) == version


def test_legacy_init_accepts_string_flags_and_string_rate():
    """The v2.0 SDK's return_extras="True" and sample_rate="24000" are understood."""
    config = parse_init({"X-API-Key": "k", "voice": "v", "return_extras": "True",
                         "sample_rate": "16000", "format": "raw"})
    assert (config.generation, config.timings, config.sample_rate, config.format) == (
        Generation.LEGACY, True, 16000, "pcm_s16le")
    assert config.extras_before_audio and not config.cumulative_timestamps


def test_current_init_defaults():
    """Current sessions default to mp3 at 24 kHz (ulaw: 8 kHz), no timestamps."""
    config = parse_init({"X-API-Key": "k", "lmnt-version": "1.2", "voice": "v"})
    assert (config.format, config.sample_rate, config.timings, config.language) == ("mp3", 24000, False, "auto")
    assert parse_init({"lmnt-version": "1.2", "voice": "v", "format": "ulaw"}).sample_rate == 8000
    assert parse_init({"lmnt-version": "1.1", "voice": "v"}).cumulative_timestamps is False


@pytest.mark.parametrize("init, fragment", [
    ({"lmnt-version": "1.2"}, "voice"),
    ({"lmnt-version": "1.2", "voice": "v", "format": "wav"}, "format"),
    ({"lmnt-version": "1.2", "voice": "v", "sample_rate": 44100}, "sample_rate"),
    ({"type": "text", "text": "hi"}, "init message"),
    ({"text": "hi"}, "init message"),
])
def test_bad_init_messages_are_rejected(init, fragment):
    """A bad init message raises invalid_request_error naming the problem."""
    with pytest.raises(ApiError) as caught:
        parse_init(init)
    assert caught.value.slug == "invalid_request_error" and fragment in caught.value.message


COMMAND_TABLE = [
    ({"type": "text", "text": "hi"}, [Text("hi")]),
    ({"type": "flush", "nonce": 3}, [Flush(3, Generation.CURRENT)]),
    ({"type": "reset", "nonce": 4}, [Reset(4, Generation.CURRENT)]),
    ({"type": "finish"}, [Finish()]),
    ({"command": "flush", "nonce": 1}, [Flush(1, Generation.COMMAND)]),
    ({"command": "eof"}, [Finish()]),
    ({"text": "a"}, [Text("a")]),
    ({"text": "a", "flush": True}, [Text("a"), Flush(None, Generation.LEGACY)]),
    ({"eof": True}, [Finish()]),
    ({"flush": False}, []),
]


@pytest.mark.parametrize("message, commands", COMMAND_TABLE)
def test_messages_are_routed_by_shape(message, commands):
    """Each client message shape maps to the expected commands, in order."""
    assert parse_command(message) == commands


@pytest.mark.parametrize("message", [
    {"type": "dance"}, {"type": "text", "text": 5}, {"type": "flush", "nonce": "x"},
    {"type": "init", "voice": "v"}, {"command": "jump"}, {"hello": 1},
])
def test_malformed_messages_raise(message):
    """Unknown or malformed messages raise invalid_request_error."""
    with pytest.raises(ApiError) as caught:
        parse_command(message)
    assert caught.value.slug == "invalid_request_error"


def test_frames_have_each_generations_shape():
    """Errors, acks and timing frames follow the generation's wire shape."""
    err = ApiError("authentication_error", "invalid API key")
    assert json.loads(error_frame(Generation.CURRENT, err, "r1")) == {
        "type": "error", "error": {"type": "authentication_error", "message": "invalid API key"},
        "request_id": "r1"}
    assert json.loads(error_frame(Generation.LEGACY, err, "r1")) == {"error": "invalid API key"}
    assert json.loads(ack_frame("flush", 7, Generation.CURRENT)) == {"type": "flush_complete", "nonce": 7}
    assert json.loads(ack_frame("reset", 2, Generation.COMMAND)) == {"complete": "reset", "nonce": 2}
    assert ack_frame("flush", None, Generation.LEGACY) is None
    legacy = parse_init({"voice": "v", "send_extras": True})
    assert json.loads(timings_frame(legacy, [], True)) == {"durations": [], "buffer_empty": True}


def test_redact_hides_only_the_key_value():
    """redact() replaces the X-API-Key value and keeps everything else."""
    message = {"X-API-Key": "secret", "voice": "v"}
    assert redact(message) == {"X-API-Key": "<redacted>", "voice": "v"}
    assert message["X-API-Key"] == "secret"


def test_rest_error_bodies_by_version():
    """REST errors use the typed body for >=1.1 and LMNT's legacy bodies otherwise."""
    auth = ApiError("authentication_error", "invalid API key")
    bad = ApiError("invalid_request_error", "no text")
    assert rest_error_body(auth, "1.2") == {"error": {"type": "authentication_error", "message": "invalid API key"}}
    assert rest_error_body(auth, None) == {"message": "invalid API key", "status": 401}
    assert rest_error_body(bad, None) == {"error": "no text"}


def _chunk(seconds, words):
    return SpeechChunk(pcm=b"\0\0" * int(seconds * 1000), words=[WordTiming(w, s, 0.1) for w, s in words])


def test_timeline_cumulative_restarts_after_flush():
    """API 1.2: starts are where chunks sound, counted from the turn's origin."""
    line = Timeline(cumulative=True)
    line.add(_chunk(1.0, [("a", 0.2)]), at=0.0)
    assert line.take() == [{"text": "a", "start": 0.2, "duration": 0.1}]
    line.add(_chunk(1.0, [("b", 0.3)]), at=1.0)
    assert line.take()[0]["start"] == 1.3
    line.restart(2.25)  # the first turn's audio decodes to 2.25 s (codec padding)
    line.add(_chunk(1.0, [("c", 0.1)]), at=2.3)
    assert line.take()[0]["start"] == 0.15


def test_timeline_per_frame_counts_from_the_frame_start():
    """API 1.1/legacy: starts count from the frame carrying them; held-back chunks shift onto it."""
    line = Timeline(cumulative=False)
    line.add(_chunk(1.0, [("a", 0.2)]), at=0.0)
    line.take(0.0)
    line.add(_chunk(0.5, [("b", 0.1)]), at=1.0)  # its audio is held back by the encoder...
    line.add(_chunk(1.0, [("c", 0.3)]), at=1.5)  # ...and goes out in one frame with this chunk
    # ...which starts at 0.96 s: the first frame decoded to 0.96 s (a resampler held 40 ms back)
    assert [(w["text"], w["start"]) for w in line.take(0.96)] == [("b", 0.14), ("c", 0.84)]
