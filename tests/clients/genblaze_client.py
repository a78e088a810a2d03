"""Drive genblaze-lmnt (genblaze's LMNT provider) against a server; print a JSON report.

Run by tests/test_clients_genblaze.py under .venv-genblaze/bin/python:

    python genblaze_client.py OUTPUT_DIR

As its README's quickstart, with the environment it documents (LMNT_API_KEY)
plus LMNT_BASE_URL, which the lmnt 2.x client it builds reads. The provider
calls speech.generate_detailed with timestamps and writes the audio file.
"""
import base64
import json
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from genblaze_core import Modality, Pipeline
from genblaze_lmnt import LMNTProvider


def pipeline(provider, raise_on_failure):
    """Run the quickstart's one-step pipeline with ``provider``; return (step, manifest)."""
    run, manifest = (
        Pipeline("lmnt-tts-demo")
        .step(provider, model="lmnt-1", prompt="The quick brown fox jumps over the lazy dog.",
              modality=Modality.AUDIO, voice="lily")
        .run(timeout=60, raise_on_failure=raise_on_failure)
    )
    return run.steps[0], manifest


def main(output_dir):
    """Run the pipeline, then once with a wrong key; return the audio, word timings and the failure."""
    step, manifest = pipeline(LMNTProvider(output_dir=output_dir), raise_on_failure=True)
    asset = step.assets[0]
    audio = Path(url2pathname(urlparse(asset.url).path)).read_bytes()
    failed, _ = pipeline(LMNTProvider(api_key="not-the-key", output_dir=output_dir), raise_on_failure=False)
    return {"status": str(step.status), "media_type": asset.media_type,
            "audio": base64.b64encode(audio).decode(), "duration": asset.duration,
            "words": [{"word": w.word, "start": w.start, "end": w.end} for w in asset.audio.word_timings],
            "manifest": bool(manifest.canonical_hash),
            "wrong_key": {"status": str(failed.status), "error": failed.error,
                          "code": str(failed.error_code) if hasattr(failed, "error_code") else None}}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
