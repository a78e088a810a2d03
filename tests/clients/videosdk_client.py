"""Drive videosdk-plugins-lmnt (VideoSDK agents' LMNT TTS) against a server; print a JSON report.

Run by tests/test_clients_videosdk.py under .venv-videosdk/bin/python:

    python videosdk_client.py WS_URL

Configured as its docstring says: the ``ws_url`` constructor argument and the
LMNT_API_KEY environment variable. The plugin streams over LMNT's websocket
only (it has no REST path); the agent framework normally hands it an audio
track, here one that keeps the bytes it is given.
"""
import asyncio
import base64
import json
import sys

from videosdk.agents import FlushMarker
from videosdk.plugins.lmnt import LMNTTTS


class Track:
    """The part of an agent audio track the plugin uses: it is given audio bytes."""

    def __init__(self):
        self.audio = bytearray()

    async def add_new_bytes(self, data):
        self.audio += data

    def interrupt(self):
        pass


async def speak(text, **options):
    """Synthesize ``text`` (a str or a list with FlushMarker entries); return audio and errors."""
    tts = LMNTTTS(**options)
    tts.audio_track = Track()
    tts.loop = asyncio.get_running_loop()
    errors = []

    def on_error(message):  # a plain function: the emitter inspects its __code__
        errors.append(message)

    tts.on("error", on_error)

    async def pieces():
        for piece in text:
            yield piece

    try:
        await tts.synthesize(text if isinstance(text, str) else pieces())
    finally:
        await tts.aclose()
    return {"audio": base64.b64encode(tts.audio_track.audio).decode(), "errors": errors}


async def main(ws_url):
    """Run the plugin's streaming path three ways (defaults, flush markers, wrong key); return a summary."""
    return {
        "string": await speak("Hello from the VideoSDK plugin.", ws_url=ws_url),
        "flushed": await speak(["First part of the turn, ", FlushMarker(), "and the second part."],
                               ws_url=ws_url, voice="leah", format="mp3", sample_rate=16000),
        "wrong_key": await speak("Nobody hears this.", ws_url=ws_url, api_key="not-the-key"),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
