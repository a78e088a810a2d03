"""Drive the official SDK lmnt 2.5.1 (the last 2.x with speech.convert); print a JSON report.

Run by tests/test_clients_lmnt25.py under .venv-lmnt25/bin/python, configured
only through the environment (LMNT_BASE_URL, LMNT_API_KEY), as its docs say:

    python lmnt25.py SAMPLE_WAV

Its speech sessions dial a hard-coded wss://api.lmnt.com URL (no base URL
setting), so only its REST calls can reach another server.
"""
import base64
import json
import sys

import lmnt
from lmnt import Lmnt


def convert(client, sample):
    """Call speech.convert; return what the SDK raised (it cannot succeed here)."""
    try:
        with open(sample, "rb") as audio:
            client.speech.convert(audio=audio, voice="lily", format="wav")
    except lmnt.APIStatusError as exc:
        return {"class": type(exc).__name__, "status": exc.status_code, "body": exc.body,
                "message": str(exc), "retries": exc.response.request.headers.get("x-stainless-retry-count")}
    return {"class": None}


def main(sample):
    """Run convert, generate and voices.create/delete; return a JSON-able summary."""
    with Lmnt() as client:
        audio = client.speech.generate(text="The old SDK speaks.", voice="lily", format="mp3").read()
        with open(sample, "rb") as upload:
            voice = client.voices.create(name="Mid era", enhance=False, files=[upload])
        deleted = client.voices.delete(voice.id)
        return {"version": lmnt.__version__, "convert": convert(client, sample),
                "audio": base64.b64encode(audio).decode(), "voice": voice.name, "deleted": deleted.success}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
