"""Every turn starts speaking at once, and its first sound is whole.

The voices pad each piece of text with silence before its first sound
(hibari ~0.25-0.3 s); at the start of a turn (the session's first audio,
or the first after a flush) a listener would wait through it. Measured on
the decoded audio of the real voices, for every streaming format and rate
and every wire generation:

* the turn's first sound (a 5 ms frame above -50 dB of the turn's loudest)
  comes at most 30 ms after the turn's first audio, plus the codec's own
  start-up delay where the format has one (mp3: 1105 samples);
* it is not clipped: at least one quiet 5 ms frame comes before it (the
  envelope rises from near silence), and pocketsphinx hears the first word;
* the first word's timing still points at the sound (within 60 ms; the
  engines time a word from its voiced part, a quiet onset comes first).
"""
import json

import numpy as np
import pytest

from lmnt_sync.codecs import SAMPLE_RATES, STREAMING_FORMATS, Encoder
from lmnt_sync.server import LocalServer
from server_kit import BINARY, Transcript, close, connect, current_init, decode, legacy_init, read, send
from speech_check import normalize_words, transcribe

TURNS = ["Seven green apples fell from the tree.", "Happy birthday to you, my friend."]
FRAME = 0.005  # seconds per envelope frame
SOUND_DB = -50.0  # a frame this close to the turn's loudest is sound
MAX_LEAD = 0.030  # seconds of quiet allowed before the first sound
TIMING_SLACK = 0.060  # first word's timing against the first sound, seconds
VOICES = [pytest.param("lily", id="hibari"), pytest.param("joe", id="piper")]
CASES = ([pytest.param("1.2", fmt, rate, id=f"1.2-{fmt}-{rate}")
          for fmt in STREAMING_FORMATS for rate in SAMPLE_RATES]
         + [pytest.param(wire, fmt, 24000, id=f"{wire}-{fmt}-24000")
            for wire in ("1.1", "legacy") for fmt in ("pcm_s16le", "mp3")])


@pytest.fixture(scope="module")
def srv():
    """A server with both real engines."""
    with LocalServer() as server:
        yield server


def _turns(srv, voice, wire, fmt, rate):
    """Speak TURNS[0], flush, wait for all its audio, then TURNS[1] and finish.

    Returns (audio bytes of turn 1, of turn 2, 1.2 timestamps of turn 1, of turn 2).
    """
    if wire == "legacy":
        ws = connect(srv, legacy_init(srv, voice=voice, format=fmt, sample_rate=rate), timeout=120)
        text, flush, finish = ({"text": t} for t in TURNS), {"flush": True}, {"eof": True}
    else:
        ws = connect(srv, current_init(srv, voice=voice, format=fmt, sample_rate=rate,
                                       **{"lmnt-version": wire}), timeout=120)
        text = ({"type": "text", "text": t} for t in TURNS)
        flush, finish = {"type": "flush", "nonce": 1}, {"type": "finish"}
    try:
        send(ws, next(text), flush)
        first = read(ws, until="flush_complete") if wire != "legacy" else _read_legacy_turn(ws)
        send(ws, next(text), finish)
        second = read(ws)
    finally:
        close(ws)
    return first.audio, second.audio, _stamps(first), _stamps(second)


def _read_legacy_turn(ws):
    """Read a legacy turn: up to the extras that say the buffer is empty, and their audio frame."""
    transcript, done = Transcript(), False
    while not done:
        opcode, data = ws.recv_data()
        if opcode == BINARY:
            transcript.events.append(("audio", data))
            continue
        message = json.loads(data)
        transcript.events.append(("json", message))
        done = message.get("buffer_empty") is True
    opcode, data = ws.recv_data()  # the audio frame those extras precede
    assert opcode == BINARY
    transcript.events.append(("audio", data))
    return transcript


def _stamps(transcript):
    return [w for m in transcript.messages("type", "timestamps") for w in m["timestamps"]]


def _envelope_db(pcm, rate):
    """dB of each 5 ms frame of int16 ``pcm``, against the loudest."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    hop = int(rate * FRAME)
    n = len(x) // hop
    rms = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9) / rms.max())


def _codec_delay(fmt, rate):
    """Seconds of silence the codec itself puts before the first sample (mp3's 1105 samples)."""
    return Encoder(fmt, rate, 24000).position_seconds


@pytest.mark.parametrize("wire, fmt, rate", CASES)
@pytest.mark.parametrize("voice", VOICES)
def test_each_turn_starts_with_its_first_sound(srv, voice, wire, fmt, rate):
    """Session start and after a flush: first sound within 30 ms (+ codec delay), after a quiet frame."""
    first, second, stamps1, stamps2 = _turns(srv, voice, wire, fmt, rate)
    _, seconds, pcm = decode(first + second, fmt, rate)
    pcm_rate = round(len(pcm) / 2 / seconds)
    cut = 2 * int(round(decode(first, fmt, rate)[1] * pcm_rate))  # where turn 2's audio begins
    allowed = MAX_LEAD + _codec_delay(fmt, rate) + FRAME  # a frame: the envelope's resolution
    for turn, audio, stamps in ((1, pcm[:cut], stamps1), (2, pcm[cut:], stamps2)):
        db = _envelope_db(audio, pcm_rate)
        sound = int(np.argmax(db > SOUND_DB))
        lead = sound * FRAME
        assert lead <= allowed, f"turn {turn}: {lead * 1000:.0f} ms before the first sound"
        assert sound >= 1, f"turn {turn}: the first frame is already sound ({db[0]:.0f} dB): clipped"
        if stamps:
            assert abs(stamps[0]["start"] - lead) <= TIMING_SLACK, (
                f"turn {turn}: first word timed at {stamps[0]['start']:.3f} s, first sound at {lead:.3f} s")


@pytest.mark.parametrize("voice", VOICES)
def test_first_words_are_heard(srv, voice):
    """pocketsphinx hears each turn's first word in the trimmed audio (the onset is not clipped)."""
    first, second, _, _ = _turns(srv, voice, "1.2", "pcm_s16le", 24000)
    for audio, text in ((first, TURNS[0]), (second, TURNS[1])):
        heard = normalize_words(transcribe(audio, 24000))
        assert heard[:1] == normalize_words(text)[:1], f"heard {heard!r} for {text!r}"
