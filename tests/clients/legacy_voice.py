"""Drive voice creation (and convert, where present) in the legacy LMNT SDK; print a JSON report.

Run by tests/test_clients_legacy.py under .venv-legacy/bin/python (lmnt
1.1.4) and .venv-legacy12/bin/python (lmnt 1.2.0, which added convert):

    python legacy_voice.py BASE_URL API_KEY SAMPLE_WAV

create_voice sends multipart/mixed (aiohttp's MultipartWriter default).
The new voice then speaks through synthesize and is deleted.
"""
import asyncio
import base64
import json
import sys

from lmnt.api import Speech, SpeechError


async def convert(speech, sample):
    """Call convert (lmnt >= 1.2.0); return the SpeechError it raised, or None without convert."""
    if not hasattr(speech, "convert"):
        return None
    with open(sample, "rb") as audio:
        data = audio.read()
    try:
        await speech.convert(data, "lily", format="wav")
    except SpeechError as exc:
        return {"status": exc.status, "message": exc.message}
    return {"status": None}


async def main(base_url, api_key, sample):
    """Create, use, list and delete a voice; return what each call gave."""
    async with Speech(api_key, base_url=base_url) as speech:
        created = await speech.create_voice("Legacy clone", False, [sample], gender="female",
                                            description="made by lmnt 1.1.4")
        spoken = await speech.synthesize("The legacy voice speaks.", created["id"], format="wav",
                                         return_durations=True)
        mine = [v["id"] for v in await speech.list_voices(owner="me")]
        deleted = await speech.delete_voice(created["id"])
        return {"created": created, "audio": base64.b64encode(spoken["audio"]).decode(),
                "durations": spoken["durations"], "mine": mine, "deleted": deleted,
                "after": [v["id"] for v in await speech.list_voices(owner="me")],
                "convert": await convert(speech, sample)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
