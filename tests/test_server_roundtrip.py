"""Round trip with real speech: the default engine says the text a recogniser hears.

Streams text in small pieces (split mid-word) over the websocket, decodes the
mp3 with PyAV and transcribes it with pocketsphinx (tests/speech_check.py).
pocketsphinx alone misses 10-30% of words on clean TTS, so the bound is a
word error rate of at most 0.35: anything above means the audio does not say
the text (wrong order, dropped segments, garbled joins).
"""
import pytest
import requests

from lmnt_sync.server import LocalServer
from server_kit import close, connect, current_init, decode, read, send
from speech_check import transcribe, word_error_rate

MAX_WER = 0.35
TEXT = "The weather is nice today. We will walk to the park and read a book. "


@pytest.fixture(scope="module")
def speaking():
    """A server with the real default engine."""
    with LocalServer() as server:
        yield server


def default_engine_voice(server):
    """Return the id of a local voice of the server's primary engine."""
    voices = requests.get(server.url + "/v1/ai/voice/list", headers={"X-API-Key": server.api_key}).json()
    return next(v["id"] for v in voices if v["tags"] == ["local", server.engine_name])


@pytest.mark.parametrize("voice", ["default-engine-voice", "lily"])
def test_streamed_speech_says_the_text(speaking, voice):
    """Speech streamed over the websocket transcribes back to the text (WER <= 0.35)."""
    voice = default_engine_voice(speaking) if voice == "default-engine-voice" else voice
    ws = connect(speaking, current_init(speaking, voice=voice, format="mp3", sample_rate=24000))
    send(ws, *({"type": "text", "text": TEXT[i:i + 9]} for i in range(0, len(TEXT), 9)))
    send(ws, {"type": "finish"})
    transcript = read(ws)
    close(ws)
    assert transcript.words() == TEXT.split() and transcript.close_code == 1000
    rate, seconds, pcm = decode(transcript.audio, "mp3", 24000)
    heard = transcribe(pcm, rate)
    assert word_error_rate(TEXT, heard) <= MAX_WER, f"heard {heard!r} in {seconds:.1f} s of audio"
