"""lmnt_sync puts on the wire what the official SDKs put there, for the same calls.

The local server records every frame each client sends; the official SDK
(lmnt 2.x in this environment, lmnt 1.1.4 in .venv-legacy) and lmnt_sync run
the same calls, and the recorded frames must be identical, key order included.
"""
import asyncio
import os
import pathlib
import subprocess

from lmnt_sync import Speech

HERE = pathlib.Path(__file__).parent
LEGACY_PYTHON = HERE.parent / ".venv-legacy" / "bin" / "python"


def ordered(frames):
    """Frames as lists of (key, value) pairs, so key order counts too."""
    return [list(frame.items()) for frame in frames]


def run_official_current(server):
    from lmnt import AsyncLmnt

    async def calls():
        client = AsyncLmnt(api_key=server.api_key, base_url=server.url)
        session = await client.speech.sessions.create(
            voice="lily", format="pcm_s16le", sample_rate=16000, language="en", return_timestamps=True
        )
        await session.send_text("Hello ")
        await session.send_text("world.")
        await session.send_flush()
        await session.send_reset()
        await session.send_text(" Bye now.")
        await session.send_finish()
        async for _ in session:
            pass
        await session.close()
        await client.close()

    asyncio.run(calls())


def run_ours_current(server):
    with Speech(api_key=server.api_key, base_url=server.url) as speech:
        conn = speech.synthesize_streaming("lily", format="pcm_s16le", sample_rate=16000, language="en",
                                           return_extras=True)
        conn.append_text("Hello ")
        conn.append_text("world.")
        conn.flush()
        conn.reset()
        conn.append_text(" Bye now.")
        conn.finish()
        for _ in conn:
            pass


def run_ours_legacy(server):
    with Speech(api_key=server.api_key, base_url=server.url) as speech:
        conn = speech.synthesize_streaming(
            "lily", protocol="legacy", return_extras=True, format="raw", sample_rate=16000, speed=1.0
        )
        conn.append_text("Hello ")
        conn.append_text("world.")
        conn.flush()
        conn.append_text(" Bye now.")
        conn.finish()
        for _ in conn:
            pass


def run_official_legacy(server):
    """Run legacy_frames_script.py with lmnt 1.1.4 (in .venv-legacy) against ``server``."""
    assert LEGACY_PYTHON.exists(), "legacy SDK venv missing: run `bash tests/bootstrap.sh`"
    env = dict(os.environ, LMNT_API_KEY=server.api_key)
    done = subprocess.run(
        [str(LEGACY_PYTHON), str(HERE / "legacy_frames_script.py"), server.url],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 0


def frames_of(server, run):
    """Run ``run`` and return the frames the server recorded for that session."""
    before = len(server.client_frames())
    run(server)
    sessions = server.client_frames()
    assert len(sessions) == before + 1
    return sessions[-1]


def test_current_wire_matches_official_sdk(server):
    """For create/send_text/send_flush/send_reset/send_finish, lmnt 2.x and lmnt_sync send identical frames."""
    theirs = frames_of(server, run_official_current)
    ours = frames_of(server, run_ours_current)
    assert theirs[0]["lmnt-version"] == "1.2" and theirs[0]["X-API-Key"] == "<redacted>"
    assert ordered(ours) == ordered(theirs)


def test_legacy_wire_matches_legacy_sdk(server):
    """For synthesize_streaming/append_text/flush/finish, lmnt 1.1.4 and lmnt_sync send identical frames."""
    theirs = frames_of(server, run_official_legacy)
    ours = frames_of(server, run_ours_legacy)
    assert "lmnt-version" not in theirs[0] and theirs[0]["send_extras"] is True
    assert ordered(ours) == ordered(theirs)
