"""lmnt_sync.server.textnorm: numbers and symbols spoken as words, by every voice.

The table gives text in and the words the engines are given to speak; each
row is then spoken by both real voices over REST, where the timings must
name the client's words, in order, one each.
"""
import base64

import pytest
import requests

from lmnt_sync.server import LocalServer
from lmnt_sync.server.engines.base import SpeechChunk, WordTiming
from lmnt_sync.server.textnorm import normalize, normalize_text, speak_normalized
from server_kit import close, connect, current_init, read, send

LONG_NUMBER = "1234567890" * 4  # 40 digits: hibari used to fail from 37

TABLE = [
    ("It costs 1,234 or -5 or 3.14.",
     "It costs one thousand two hundred and thirty-four or minus five or three point one four."),
    ("Born in 1995, not 2000.", "Born in nineteen ninety-five, not two thousand."),
    ("the 21st and 2nd time", "the twenty-first and second time"),
    ("It costs $12.50 or $1 or $5 million.",
     "It costs twelve dollars and fifty cents or one dollar or five million dollars."),
    ("Save 50% today", "Save fifty percent today"),
    ("On 04/05/2025 or 2025-04-05.", "On April fifth twenty twenty-five or April fifth twenty twenty-five."),
    ("At 10:30 or 5:00 or 7:05.", "At ten thirty or five o'clock or seven oh five."),
    ("Meet at 5 p.m. if dry.", "Meet at five p m if dry."),
    ("Ages 25-30 only", "Ages twenty-five to thirty only"),
    ("Add 3/4 and 1/2 and 5/8 cups.", "Add three quarters and one half and five eighths cups."),
    ("Run 10 km or 1 km at 20°C, 5kg.",
     "Run ten kilometers or one kilometer at twenty degrees Celsius, five kilograms."),
    ("Python 3.10 and v1.2.3 are out.", "Python three point ten and one point two point three are out."),
    ("See www.example.com/docs today", "See w w w dot example dot com slash docs today"),
    ("Write to jane.doe@example.org now", "Write to jane dot doe at example dot org now"),
    ("a USB type C cable", "a USB type see cable"),
    ("Tom & Jerry", "Tom and Jerry"),
    ("Great job \U0001f44d really \U0001f389.", "Great job really."),
    (f"Call {LONG_NUMBER} now", "Call " + " ".join(["one", "two", "three", "four", "five", "six", "seven",
                                                     "eight", "nine", "zero"] * 4) + " now"),
]
IDS = ["numbers", "years", "ordinals", "currency", "percent", "dates", "times", "am-pm", "ranges",
       "fractions", "units", "versions", "web-address", "email", "single-letter", "symbols", "emoji",
       "long-number"]
VOICES = ["lily", "joe"]


@pytest.fixture(scope="module")
def srv():
    """A server with both real engines."""
    with LocalServer() as server:
        yield server


@pytest.mark.parametrize("text, spoken", TABLE, ids=IDS)
def test_normalize_table(text, spoken):
    """Each class of written form becomes the words to speak."""
    assert normalize_text(text) == spoken
    assert len(normalize(text.split())) == len(text.split()), "one group per client word"


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize("text, spoken", TABLE, ids=IDS)
def test_every_class_is_spoken_by_both_voices(srv, voice, text, spoken):
    """REST speaks each row; the timings name the client's words in order, inside the audio."""
    reply = requests.post(f"{srv.url}/v1/ai/speech", timeout=120,
                          headers={"X-API-Key": srv.api_key, "lmnt-version": "1.2"},
                          json={"text": text, "voice": voice, "format": "raw", "return_timestamps": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    seconds = len(base64.b64decode(body["audio"])) / 2 / 24000
    stamps = body["timestamps"]
    assert [w["text"] for w in stamps] == text.split()
    assert all(w["start"] + w["duration"] <= seconds + 0.01 for w in stamps)
    # Spoken words take time: the normalised form is what is read (0.1 s a word at least).
    assert seconds >= 0.1 * len(spoken.split())


@pytest.mark.parametrize("digits", [37, 200])
def test_any_length_number_keeps_a_streaming_session_alive(srv, digits):
    """A huge number is spoken digit by digit; the session goes on to the next turn."""
    number = ("9876543210" * 21)[:digits]
    ws = connect(srv, current_init(srv, format="pcm_s16le"))
    try:
        send(ws, {"type": "text", "text": f"The code is {number}."}, {"type": "flush", "nonce": 1},
             {"type": "text", "text": "Still here."}, {"type": "finish"})
        transcript = read(ws)
    finally:
        close(ws)
    assert not transcript.messages("type", "error")
    assert transcript.words() == ["The", "code", "is", f"{number}.", "Still", "here."]
    assert transcript.close_code == 1000


def test_timings_map_back_to_the_client_words():
    """Spoken words of one client word merge into its timing; unspoken words get zero length."""

    def engine(spoken):  # an engine contract stand-in: 0.1 s per spoken word
        words = spoken.split()
        yield SpeechChunk(b"\0\0" * 2400 * len(words),
                          [WordTiming(w, 0.1 * i, 0.1) for i, w in enumerate(words)])

    chunks = list(speak_normalized(engine, "Pay $12.50 \U0001f44d now", 24000))
    timings = [w for c in chunks for w in c.words]
    assert [(t.text, round(t.start, 3), round(t.duration, 3)) for t in timings] == [
        ("Pay", 0.0, 0.1), ("$12.50", 0.1, 0.5), ("\U0001f44d", 0.6, 0.0), ("now", 0.6, 0.1)]
