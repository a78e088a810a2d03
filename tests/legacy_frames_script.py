"""Run under .venv-legacy (lmnt 1.1.4): make the calls test_wire_compat compares.

Usage: python legacy_frames_script.py BASE_URL  (API key in LMNT_API_KEY)
"""
import asyncio
import sys

from lmnt.api import Speech


async def main(base_url):
    async with Speech(base_url=base_url) as speech:
        conn = await speech.synthesize_streaming("lily", return_extras=True, format="raw", sample_rate=16000, speed=1.0)
        await conn.append_text("Hello ")
        await conn.append_text("world.")
        await conn.flush()
        await conn.append_text(" Bye now.")
        await conn.finish()
        count = 0
        async for message in conn:
            count += len(message["audio"])
        print(count)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
