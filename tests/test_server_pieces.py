"""Encode in pieces: codec formats send a chunk's first 250 ms on its own.

The stream must be the one encoding whole chunks gives: same decoded audio,
same length, same timings (test_server_formats checks timings against where
words sound).
"""
import pytest

from lmnt_sync.codecs import Encoder
from lmnt_sync.server import LocalServer
from lmnt_sync.server.engines.synthetic import SyntheticEngine
from lmnt_sync.server.synthesis import FIRST_PIECE_SECONDS, ChunkSource
from server_kit import close, connect, current_init, decode, read, send

TEXT = ("A sentence with enough words to run well past a quarter of a second. "
        "Short one. And a third sentence, long enough for two pieces as well.")


def _stream(fmt, rate, pieces):
    """Encode TEXT step by step; return (bytes, steps, timed words)."""
    engine = SyntheticEngine()
    encoder = Encoder(fmt, rate, engine.sample_rate)
    source = ChunkSource(engine, TEXT, "synth", encoder)
    if not pieces:
        source._piece = 0
    parts, steps, words = [], [], []
    while True:
        step = source.next_encoded()
        if step is None:
            break
        chunk, data, seconds = step
        parts.append(data)
        steps.append(seconds)
        words.extend(w.text for w in chunk.words)
    parts.append(encoder.drain())
    parts.append(encoder.finish())
    return b"".join(parts), steps, words


@pytest.mark.parametrize("fmt", ["mp3", "webm"])
@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_pieces_decode_to_the_same_audio_as_whole_chunks(fmt, rate):
    whole, whole_steps, whole_words = _stream(fmt, rate, pieces=False)
    split, split_steps, split_words = _stream(fmt, rate, pieces=True)
    assert len(split_steps) > len(whole_steps), "some chunk was long enough to split"
    assert split_steps[0] == pytest.approx(FIRST_PIECE_SECONDS, abs=1e-4)
    assert sum(split_steps) == pytest.approx(sum(whole_steps), abs=1e-9)
    assert split_words == whole_words == TEXT.split()
    if fmt == "mp3":
        assert split == whole, "bare mp3 frames: the very same bytes"
    whole_rate, whole_seconds, whole_pcm = decode(whole, fmt, rate)
    split_rate, split_seconds, split_pcm = decode(split, fmt, rate)
    assert (split_rate, split_seconds) == (whole_rate, whole_seconds)
    assert split_pcm == whole_pcm


@pytest.mark.parametrize("fmt", ["pcm_s16le", "pcm_f32le", "ulaw"])
def test_formats_without_a_codec_send_chunks_whole(fmt):
    _, steps, _ = _stream(fmt, 24000, pieces=True)
    assert len(steps) == 3  # one step per sentence


def test_mp3_session_sends_the_first_piece_as_its_own_frame():
    """Over the wire: the first audio frame of a long sentence holds its first piece only."""
    with LocalServer(engine="synthetic") as server:
        ws = connect(server, current_init(server, voice="synth", format="mp3"))
        try:
            send(ws, {"type": "text", "text": TEXT}, {"type": "flush"})
            turn = read(ws, until="flush_complete")
        finally:
            close(ws)
    audio = [data for kind, data in turn.events if kind == "audio"]
    assert len(audio) > 3
    first_seconds = decode(audio[0], "mp3", 24000)[1]
    assert first_seconds <= FIRST_PIECE_SECONDS + 0.05
    assert turn.words() == TEXT.split()


def test_dropped_rest_is_never_encoded():
    """A reset between a chunk's pieces: the held-back audio does not come out later."""
    encoder = Encoder("mp3", 24000, 24000)
    pcm = (b"\x00\x10" * 24000)  # 1 s
    first = encoder.encode(pcm, first_seconds=0.25)
    encoder.drop_rest()
    data = first + encoder.drain() + encoder.finish()
    seconds = decode(data, "mp3", 24000)[1]
    assert seconds < 0.5
