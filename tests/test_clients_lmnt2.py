"""The current official SDK (lmnt 2.13) configured the way its docs say: the environment.

tests/test_official_sdk.py drives AsyncLmnt with the base_url/api_key
constructor arguments; here both clients get nothing but LMNT_BASE_URL and
LMNT_API_KEY, the sync client streams /v1/ai/speech/bytes chunk by chunk,
and the speech is the real default engine's, checked by a recognizer.
"""
import asyncio

import pytest
from lmnt import AsyncLmnt, Lmnt
from lmnt.types import SpeechSessionAudio

from server_kit import decode, synthetic_seconds
from speech_check import transcribe, word_error_rate

MAX_WER = 0.35  # pocketsphinx alone misses 10-30% of words (see test_server_roundtrip.py)
TEXT = "The weather is nice today. We will walk to the park and read a book."


@pytest.fixture
def env_for(monkeypatch):
    """Return a function that points the SDK's environment at a server."""

    def point(server):
        monkeypatch.setenv("LMNT_BASE_URL", server.url)
        monkeypatch.setenv("LMNT_API_KEY", server.api_key)

    return point


def test_sync_client_streams_speech_that_says_the_text(speaking_server, env_for):
    """Lmnt() from the environment: generate streamed as chunks, mp3 a recognizer understands."""
    env_for(speaking_server)
    with Lmnt() as client:
        with client.speech.with_streaming_response.generate(text=TEXT, voice="lily", format="mp3") as response:
            chunks = list(response.iter_bytes())
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    rate, seconds, pcm = decode(b"".join(chunks), "mp3", 24000)
    heard = transcribe(pcm, rate)
    assert word_error_rate(TEXT, heard) <= MAX_WER, f"heard {heard!r} in {seconds:.1f} s of audio"


def test_async_session_from_the_environment_gives_exact_pcm_and_timestamps(server, env_for):
    """AsyncLmnt() from the environment: a pcm_s16le 16 kHz session gives every word and its audio."""
    env_for(server)
    text = "Configured by the environment alone."

    async def scenario():
        async with AsyncLmnt() as client:
            session = await client.speech.sessions.create(voice="lily", format="pcm_s16le", sample_rate=16000,
                                                          return_timestamps=True)
            await session.send_text(text)
            await session.send_finish()
            messages = [message async for message in session]
            await session.close()
            return messages

    messages = asyncio.run(scenario())
    assert messages[0].type == "ready" and not [m for m in messages if m.type == "error"]
    assert [t.text for m in messages if m.type == "timestamps" for t in m.timestamps] == text.split()
    audio = b"".join(m.audio for m in messages if isinstance(m, SpeechSessionAudio))
    assert len(audio) == round(synthetic_seconds(text, 16000) * 16000) * 2
    assert decode(audio, "pcm_s16le", 16000)[0] == 16000
