"""Drive livekit-plugins-lmnt (LiveKit agents' LMNT TTS) against a server; print a JSON report.

Run by tests/test_clients_livekit.py under .venv-livekit/bin/python:

    python livekit_client.py SERVER_URL

The plugin's only path is REST (POST https://api.lmnt.com/v1/ai/speech/bytes,
hard-coded: it has no base-URL setting and declares no streaming). Its
documented ``http_session`` argument is the way in: an aiohttp session whose
client middleware sends each request to SERVER_URL instead. The key comes
from LMNT_API_KEY, as its docs say. LiveKit decodes the audio itself; the
report carries the PCM frames it produced.
"""
import asyncio
import base64
import json
import sys

import aiohttp
from livekit.agents import APIConnectOptions, APIStatusError
from livekit.plugins import lmnt
from yarl import URL


def session_for(server_url):
    """Return an aiohttp session that sends every request to ``server_url`` (same path)."""
    server = URL(server_url)

    async def to_server(request, handler):
        request.url = request.url.with_scheme(server.scheme).with_host(server.host).with_port(server.port)
        return await handler(request)

    return aiohttp.ClientSession(middlewares=(to_server,))


async def speak(session, text, **options):
    """Synthesize ``text`` with the plugin; return LiveKit's PCM, its format, and any error."""
    tts = lmnt.TTS(http_session=session, **options)
    pcm, rates, error = bytearray(), set(), None
    try:
        async with tts.synthesize(text, conn_options=APIConnectOptions(max_retry=0)) as stream:
            async for event in stream:
                pcm += event.frame.data.tobytes()
                rates.add(event.frame.sample_rate)
    except APIStatusError as exc:
        error = {"class": type(exc).__name__, "status": exc.status_code}
    finally:
        await tts.aclose()
    return {"pcm": base64.b64encode(pcm).decode(), "rates": sorted(rates), "error": error}


async def main(server_url):
    """Run the plugin's REST path with defaults, wav at 16 kHz, and a wrong key."""
    async with session_for(server_url) as session:
        return {
            "default": await speak(session, "Hello from the LiveKit plugin."),
            "wav": await speak(session, "Sixteen kilohertz wave audio.", voice="lily", format="wav",
                               sample_rate=16000),
            "wrong_key": await speak(session, "Nobody hears this.", api_key="not-the-key"),
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
