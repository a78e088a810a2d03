"""The README's main job: the streaming guide sample speaks its text, offline, with no key."""
import os
import pathlib
import subprocess
import sys

import av
import numpy as np

from speech_check import transcribe, word_error_rate

SAMPLES = pathlib.Path(__file__).parent.parent / "samples"
WER_BOUND = 0.35  # pocketsphinx alone misses about 1 word in 10 of this clean speech


def decode_mono_int16(path):
    """Decode an audio file to 16-bit mono PCM bytes and its rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate(chunks).astype(np.float32)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), rate


def test_main_job_writes_mp3_that_says_the_text(tmp_path):
    """Without LMNT_API_KEY, samples/streaming_guide.py streams text into the embedded server and the mp3 says it."""
    env = {k: v for k, v in os.environ.items() if k not in ("LMNT_API_KEY", "LMNT_BASE_URL", "OPENAI_API_KEY")}
    done = subprocess.run(
        [sys.executable, str(SAMPLES / "streaming_guide.py"), "speech.mp3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "embedded local server" in done.stderr
    pcm, rate = decode_mono_int16(tmp_path / "speech.mp3")
    assert rate == 24000 and len(pcm) / 2 / rate > 5.0
    sys.path.insert(0, str(SAMPLES))
    try:
        from streaming_guide import LOCAL_REPLY
    finally:
        sys.path.remove(str(SAMPLES))
    assert word_error_rate(LOCAL_REPLY, transcribe(pcm, rate)) <= WER_BOUND
