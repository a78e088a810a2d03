"""Word timings point where the words sound in the decoded audio: every format x rate x wire.

The synthetic engine's words are tone bursts with digital silence between
them, so where each word starts can be read off the decoded audio. Two turns
(a flush between them: the encoder drains and 1.2 starts count from 0
again) go over each wire, and every word's timing, placed in the decoded
stream the way that wire defines it, must be within 15 ms of its burst:

* API 1.2: starts count from the first audio after the last flush ack;
* API 1.1: starts count from the audio frame the timestamps follow;
* legacy extras: starts count from the audio frame the extras precede.

Resampling (8/16 kHz from the engine's 24 kHz), mp3's 1105-sample codec
delay, Opus's pre-skip and drain padding are all in play.
"""
import pytest

from lmnt_sync.codecs import SAMPLE_RATES, STREAMING_FORMATS
from lmnt_sync.server import LocalServer
from server_kit import close, connect, current_init, decode, legacy_init, onsets, read, send

TURNS = ["Alignment checks every word here. Then a second sentence follows on", "Last turn now."]
TOLERANCE = 0.015  # seconds; onsets are read on a 5 ms grid


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server for this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


def _decoded_seconds(audio, fmt, rate):
    return decode(audio, fmt, rate)[1] if audio else 0.0


def _session(srv, wire, fmt, rate):
    """Speak TURNS over ``wire``; return the transcript."""
    if wire == "legacy":
        ws = connect(srv, legacy_init(srv, voice="synth", format=fmt, sample_rate=rate))
        send(ws, {"text": TURNS[0]}, {"flush": True}, {"text": TURNS[1]}, {"eof": True})
    else:
        ws = connect(srv, current_init(srv, voice="synth", format=fmt, sample_rate=rate,
                                       **{"lmnt-version": wire}))
        send(ws, {"type": "text", "text": TURNS[0]}, {"type": "flush", "nonce": 1},
             {"type": "text", "text": TURNS[1]}, {"type": "finish"})
    try:
        return read(ws)
    finally:
        close(ws)


def _placed(transcript, wire, fmt, rate):
    """Each word's start in the decoded stream, as a client of ``wire`` computes it."""
    placed, audio, before_last = [], b"", b""
    origin = 0.0
    for kind, message in transcript.events:
        if kind == "audio":
            before_last, audio = audio, audio + message
            continue
        if wire == "1.2":
            if message.get("type") == "flush_complete":
                origin = _decoded_seconds(audio, fmt, rate)
            base = origin
            words = message.get("timestamps") or []
        elif wire == "1.1":  # timestamps follow the frame they describe
            words = message.get("timestamps") or []
            base = _decoded_seconds(before_last, fmt, rate) if words else 0.0
        else:  # legacy extras precede the frame they describe
            words = message.get("durations") or []
            base = _decoded_seconds(audio, fmt, rate) if words else 0.0
        placed += [base + w["start"] for w in words]
    return placed


@pytest.mark.parametrize("wire", ["1.2", "1.1", "legacy"])
@pytest.mark.parametrize("rate", SAMPLE_RATES)
@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
def test_timings_match_the_decoded_audio(srv, fmt, rate, wire):
    """Every word's timing is within 15 ms of where its burst starts in the decoded stream."""
    transcript = _session(srv, wire, fmt, rate)
    _, seconds, pcm = decode(transcript.audio, fmt, rate)
    heard = onsets(pcm, round(len(pcm) / 2 / seconds))
    placed = _placed(transcript, wire, fmt, rate)
    words = sum((t.split() for t in TURNS), [])
    assert len(placed) == len(heard) == len(words)
    misses = {w: round(p - h, 4) for w, p, h in zip(words, placed, heard) if abs(p - h) > TOLERANCE}
    assert not misses, f"timing minus sound, seconds: {misses}"
