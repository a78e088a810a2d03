"""The official async LMNT SDK (lmnt 2.x) runs unchanged against the local server."""
import asyncio
import io

import lmnt  # noqa: E402 - lmnt 2.x is a [test] dependency; never skipped
import pytest

assert int(lmnt.__version__.split(".")[0]) >= 2, f"needs the official SDK 2.x, found {lmnt.__version__}"

from lmnt import AsyncLmnt, AuthenticationError, NotFoundError  # noqa: E402
from lmnt.types import SpeechSessionAudio  # noqa: E402

from lmnt_sync.server import LocalServer  # noqa: E402
from server_kit import decode  # noqa: E402


@pytest.fixture(scope="module")
def srv():
    """A synthetic-engine server for this module."""
    with LocalServer(engine="synthetic") as server:
        yield server


def run(coro_fn, server, **client_kwargs):
    """Run ``coro_fn(client)`` with an AsyncLmnt bound to ``server``; close the client."""

    async def main():
        client = AsyncLmnt(api_key=client_kwargs.pop("api_key", server.api_key), base_url=server.url,
                           max_retries=0, **client_kwargs)
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


async def _collect(session):
    messages = []
    async for message in session:
        messages.append(message)
    return messages


def test_session_text_flush_reset_finish(srv):
    """sessions.create + send_text/flush/reset/finish: audio, timestamps, acks, normal end."""

    async def scenario(client):
        session = await client.speech.sessions.create(voice="leah", format="mp3", return_timestamps=True)
        await session.send_text("Hello from the official SDK. ")
        await session.send_text("This part is flushed")
        flush = await session.send_flush()
        messages = []
        async for message in session:  # a reset drops flushed text not yet spoken: wait for it
            messages.append(message)
            if message.type == "flush_complete":
                break
        await session.send_text("and this part is reset away")
        reset = await session.send_reset()
        await session.send_text("Goodbye.")
        await session.send_finish()
        messages += await _collect(session)
        await session.close()
        return flush, reset, messages

    flush, reset, messages = run(scenario, srv)
    kinds = [m.type for m in messages]
    assert kinds[0] == "ready" and kinds.count("error") == 0
    words = [t.text for m in messages if m.type == "timestamps" for t in m.timestamps]
    assert words == ["Hello", "from", "the", "official", "SDK.", "This", "part", "is", "flushed", "Goodbye."]
    acks = [(m.type, m.nonce) for m in messages if m.type.endswith("_complete")]
    assert acks == [("flush_complete", flush), ("reset_complete", reset)]
    audio = b"".join(m.audio for m in messages if isinstance(m, SpeechSessionAudio))
    rate, seconds, _ = decode(audio, "mp3", 24000)
    assert rate == 24000 and seconds > 1


def test_session_with_a_wrong_key_yields_an_error_message(srv):
    """A wrong key makes the session yield a typed error message, then end."""

    async def scenario(client):
        session = await client.speech.sessions.create(voice="leah")
        await session.send_text("Nobody hears this.")
        return await _collect(session)

    messages = run(scenario, srv, api_key="wrong-key")
    assert [m.type for m in messages] == ["error"]
    assert messages[0].error.type == "authentication_error" and messages[0].request_id


def test_generate_bytes_and_detailed(srv):
    """speech.generate returns audio bytes; generate_detailed returns base64 audio and timestamps."""

    async def scenario(client):
        response = await client.speech.generate(text="Bytes please.", voice="lily", format="wav",
                                                sample_rate=16000)
        detailed = await client.speech.generate_detailed(text="Details please.", voice="lily",
                                                         return_timestamps=True)
        return await response.read(), detailed

    audio, detailed = run(scenario, srv)
    assert audio[:4] == b"RIFF" and decode(audio, "wav", 16000)[0] == 16000
    assert [t.text for t in detailed.timestamps] == ["Details", "please."] and detailed.audio


def test_voices_and_account(srv):
    """voices.list/create/retrieve/update/delete and accounts.retrieve work unchanged."""

    async def scenario(client):
        listed = await client.voices.list()
        created = await client.voices.create(file=("me.wav", io.BytesIO(b"RIFF sample")), name="SDK voice",
                                             description="made by the SDK", gender="female", tags=["sdk"])
        retrieved = await client.voices.retrieve(created.id)
        updated = await client.voices.update(created.id, name="SDK voice 2", starred=True)
        mine = await client.voices.list(owner="me", starred="true")
        deleted = await client.voices.delete(created.id)
        account = await client.accounts.retrieve()
        try:
            await client.voices.retrieve(created.id)
            missing = None
        except NotFoundError as exc:
            missing = exc
        return listed, created, retrieved, updated, mine, deleted, account, missing

    listed, created, retrieved, updated, mine, deleted, account, missing = run(scenario, srv)
    assert {"lily", "leah", "synth"} <= {v.id for v in listed}
    assert created.owner == "me" and created.tags == ["sdk"]
    assert retrieved.model_dump() == created.model_dump()
    assert updated.voice.name == "SDK voice 2" and updated.voice.starred is True
    assert [v.id for v in mine] == [created.id] and deleted.success is True
    assert account.plan.type == "local" and account.usage.characters > 0
    assert missing is not None and missing.status_code == 404 and missing.type == "not_found_error"


def test_rest_with_a_wrong_key_raises_authentication_error(srv):
    """A wrong key on REST raises the SDK's AuthenticationError (401)."""

    async def scenario(client):
        with pytest.raises(AuthenticationError) as caught:
            await client.accounts.retrieve()
        return caught.value

    error = run(scenario, srv, api_key="wrong-key")
    assert error.status_code == 401 and error.type == "authentication_error"
    assert error.request_id.startswith("req_")
