"""Drive the legacy LMNT SDK (lmnt==1.1.4) against a server; print JSON results.

Run by tests/test_legacy_sdk.py under .venv-legacy/bin/python (the legacy
and current SDKs cannot share one environment):

    python legacy_sdk_script.py BASE_URL API_KEY VOICE

Prints one JSON object on stdout: what each SDK call returned, reduced to
sizes and keys so the test can assert on it. Exits non-zero on any error.
"""
import asyncio
import json
import sys

from lmnt.api import Speech


async def streaming(speech, voice):
    """Stream with extras: append_text, flush, more text, finish; collect messages."""
    conn = await speech.synthesize_streaming(voice, return_extras=True, format="mp3",
                                             sample_rate=24000)
    await conn.append_text("Hello there, this is the legacy")
    await conn.append_text(" SDK speaking. ")
    await conn.flush()
    await conn.append_text("And a final sentence.")
    await conn.finish()
    messages = []
    async for message in conn:
        messages.append({
            "audio": len(message["audio"]),
            "durations": message["durations"],
            "buffer_empty": message.get("buffer_empty"),
        })
    return messages


async def streaming_plain(speech, voice):
    """Stream without extras: only binary audio frames arrive."""
    conn = await speech.synthesize_streaming(voice, format="raw", sample_rate=16000)
    await conn.append_text("Short and plain.")
    await conn.finish()
    return [len(message["audio"]) async for message in conn]


async def main(base_url, api_key, voice):
    """Run every legacy call and return a JSON-able summary."""
    async with Speech(api_key, base_url=base_url) as speech:
        synth = await speech.synthesize("Hello from the legacy synthesize call.", voice,
                                        format="wav", return_durations=True, return_seed=True)
        voices = await speech.list_voices()
        return {
            "streaming": await streaming(speech, voice),
            "streaming_plain": await streaming_plain(speech, voice),
            "synthesize": {"audio": len(synth["audio"]), "riff": synth["audio"][:4].decode("latin-1"),
                           "durations": synth["durations"], "seed": synth["seed"]},
            "voices": [v["id"] for v in voices],
            "starred": [v["id"] for v in await speech.list_voices(starred=True)],
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
