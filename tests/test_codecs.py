"""Tests for lmnt_sync.codecs: every format x sample rate, round trip.

Each row encodes a 440 Hz sine (given in uneven chunks, some of odd byte
length, with ``drain()`` in the middle), decodes the concatenated bytes with
PyAV and checks the rate, the duration and that the sine survived.

Duration tolerance: the decoded audio must hold all the input (at least the
input duration minus 2 ms) and at most the input plus 2 ms plus the padding
this format's codec may add (mp3: priming 1105 samples + 4 drain frames +
2 end frames of 576; aac: 1 priming + 3 drain + 2 end frames of 1024; opus:
5 frames of 20 ms). Resampling itself must add no time, even with a drain.
"""
from __future__ import annotations

import io
import struct
import wave

import av
import numpy as np
import pytest

from lmnt_sync import codecs
from lmnt_sync.codecs import (
    REST_FORMATS,
    SAMPLE_RATES,
    STREAMING_FORMATS,
    Encoder,
    content_type,
    default_sample_rate,
    normalize_format,
    normalize_sample_rate,
)

FREQ = 440.0
AMPLITUDE = 0.3
SOURCE_RATES = (22050, 24000)  # piper's and hibari's rates
RAW = {"pcm_s16le": "s16le", "pcm_f32le": "f32le"}


def sine(rate: int, seconds: float, phase: int = 0) -> np.ndarray:
    t = (np.arange(int(rate * seconds)) + phase) / rate
    return (AMPLITUDE * 32767 * np.sin(2 * np.pi * FREQ * t)).astype("<i2")


def uneven_chunks(pcm: bytes):
    """Split into chunks of varied sizes, some cutting a sample in half."""
    sizes = [1, 3001, 40, 12345, 7, 20000, 999]
    pos, i = 0, 0
    while pos < len(pcm):
        yield pcm[pos:pos + sizes[i % len(sizes)]]
        pos += sizes[i % len(sizes)]
        i += 1


def decode(data: bytes, fmt: str, rate: int):
    """Decode with PyAV; returns (float samples in [-1, 1], sample rate)."""
    if fmt in RAW:
        container = av.open(io.BytesIO(data), format=RAW[fmt], options={"sample_rate": str(rate), "ch_layout": "mono"})
    else:
        container = av.open(io.BytesIO(data))
    with container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float64).reshape(-1) for f in container.decode(stream)]
        out_rate = stream.codec_context.sample_rate
    samples = np.concatenate(frames) if frames else np.zeros(0)
    if samples.dtype.kind != "f" or np.abs(samples).max(initial=0) > 2:  # integer sample formats
        samples = samples / 32768.0
    return samples, out_rate


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window, n=8 * len(window)))
    return float(np.argmax(spectrum) * rate / (8 * len(window)))


def allowed_extra(fmt: str, rate: int) -> float:
    """Seconds of padding ``fmt`` may add to the round trip (see module doc)."""
    extra = 0.0
    if fmt == "mp3":
        extra += (1105 + 6 * 576) / rate
    elif fmt == "aac":
        extra += 6 * 1024 / rate
    elif fmt == "webm":
        extra += 5 * 0.020
    return extra + 0.002


ROWS = [(f, r, s) for f in REST_FORMATS for r in SAMPLE_RATES for s in SOURCE_RATES]


@pytest.mark.parametrize("fmt,rate,source", ROWS)
def test_round_trip(fmt, rate, source):
    seconds = 1.2
    pcm = sine(source, seconds).tobytes()
    enc = Encoder(fmt, rate, source)
    out = []
    for i, chunk in enumerate(uneven_chunks(pcm)):
        out.append(enc.encode(chunk))
        if i == 1:  # 68 ms in; the silence drain() may add ends before 0.5 s
            out.append(enc.drain())
    out.append(enc.finish())
    samples, out_rate = decode(b"".join(out), fmt, rate)

    # Opus always decodes at 48 kHz, whatever rate it was encoded at.
    assert out_rate == (48000 if fmt == "webm" else rate)
    duration = len(samples) / out_rate
    assert seconds - 0.002 <= duration <= seconds + allowed_extra(fmt, rate)

    middle = samples[int(0.5 * out_rate):int(1.1 * out_rate)]
    assert abs(dominant_frequency(middle, out_rate) - FREQ) < 3.0
    rms = float(np.sqrt(np.mean(middle ** 2)))
    assert rms == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.15)


@pytest.mark.parametrize("fmt", ["pcm_s16le", "pcm_f32le", "ulaw", "wav"])
@pytest.mark.parametrize("rate", SAMPLE_RATES)
@pytest.mark.parametrize("source", SOURCE_RATES)
def test_pcm_paths_have_no_clicks_at_chunk_joins(fmt, rate, source):
    """A resampled sine split at arbitrary points stays smooth everywhere."""
    enc = Encoder(fmt, rate, source)
    data = b"".join(enc.encode(c) for c in uneven_chunks(sine(source, 1.0).tobytes())) + enc.finish()
    samples, _ = decode(data, fmt, rate)
    body = samples[int(0.05 * rate):int(0.9 * rate)]  # skip the filter's fade in/out
    # The steepest step of a sine is A * 2*pi*f / rate; allow 5% plus the
    # quantization of the format (mu-law steps are up to 1024/32768 near peaks).
    quantum = 1024 / 32768 if fmt == "ulaw" else 2 / 32768
    limit = AMPLITUDE * 2 * np.pi * FREQ / rate * 1.05 + quantum
    assert np.abs(np.diff(body)).max() <= limit


@pytest.mark.parametrize("rate,source", [(r, s) for r in SAMPLE_RATES for s in SOURCE_RATES if r != s])
def test_resampled_drain_adds_no_time_and_no_click(rate, source):
    x = sine(source, 1.0).tobytes()
    enc = Encoder("pcm_s16le", rate, source)
    out = enc.encode(x[:40002]) + enc.drain() + enc.encode(x[40002:]) + enc.finish()
    y = np.frombuffer(out, "<i2") / 32768
    assert abs(len(y) - rate) <= 1
    # Where the filter saw silence past the drain the sine fades briefly;
    # the steepest step stays within 2x the sine's own (a click is >> 2x).
    slope = AMPLITUDE * 2 * np.pi * FREQ / rate
    assert np.abs(np.diff(y[int(0.05 * rate):int(0.9 * rate)])).max() <= 2 * slope


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_drain_pushes_out_everything_given_so_far(fmt, rate):
    """The bytes up to drain() decode to all the audio given before it."""
    source = 22050
    seconds = 0.5
    enc = Encoder(fmt, rate, source)
    prefix = enc.encode(sine(source, seconds).tobytes()) + enc.drain()
    samples, out_rate = decode(prefix, fmt, rate)
    assert len(samples) / out_rate >= seconds - 0.002
    # All the sine's energy is there (a missing tail would lower it).
    energy = float(np.sum(samples ** 2)) / out_rate
    assert energy == pytest.approx(seconds * AMPLITUDE ** 2 / 2, rel=0.1)
    # The stream goes on after a drain and still decodes as one file.
    rest = enc.encode(sine(source, 0.3, phase=int(source * seconds)).tobytes()) + enc.finish()
    whole, _ = decode(prefix + rest, fmt, rate)
    # The silence drain() inserted is reported, and really is in the stream.
    if fmt in ("mp3", "webm"):
        assert 0 < enc.padding_seconds <= 0.3
    else:
        assert enc.padding_seconds == 0
    assert len(whole) / out_rate >= seconds + 0.3 + enc.padding_seconds - 0.002


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_pcm_s16le_passthrough_is_exact(rate):
    pcm = sine(rate, 0.2).tobytes()
    enc = Encoder("pcm_s16le", rate, rate)
    assert b"".join(enc.encode(c) for c in uneven_chunks(pcm)) + enc.drain() + enc.finish() == pcm


def test_pcm_f32le_scales_to_unit_range():
    enc = Encoder("pcm_f32le", 24000, 24000)
    out = np.frombuffer(enc.encode(np.array([0, 16384, -32768], "<i2").tobytes()), "<f4")
    assert out.tolist() == [0.0, 0.5, -1.0]


def test_ulaw_is_streamed_with_a_wav_header_of_unknown_size():
    enc = Encoder("ulaw", 8000, 8000)
    first = enc.encode(sine(8000, 0.1).tobytes())
    assert first[:4] == b"RIFF" and first[8:16] == b"WAVE" + b"fmt "
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", first, 20)
    assert (tag, channels, rate, byte_rate, align, bits) == (7, 1, 8000, 8000, 1, 8)
    assert struct.unpack_from("<I", first, 4)[0] == 0xFFFFFFFF
    data_at = first.index(b"data")
    assert struct.unpack_from("<I", first, data_at + 4)[0] == 0xFFFFFFFF
    assert len(first) - data_at - 8 == 800  # one byte per sample, sent at once


def test_ulaw_codes_match_g711():
    # Reference values of the ITU G.711 mu-law coder.
    table = {0: 0xFF, -1: 0x7E, 32767: 0x80, -32768: 0x00, 1000: 0xCE, -1000: 0x4E}
    enc = Encoder("ulaw", 8000, 8000)
    enc.drain()  # consume the header
    out = enc.encode(np.array(list(table), "<i2").tobytes())
    assert list(out) == list(table.values())


def test_wav_has_exact_sizes_and_reads_with_the_wave_module():
    enc = Encoder("wav", 16000, 16000)
    pcm = sine(16000, 0.25).tobytes()
    assert enc.encode(pcm) == b""  # not streamable: emitted whole at finish
    data = enc.finish()
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.readframes(w.getnframes()) == pcm


def test_webm_streams_a_header_first_and_is_opus():
    enc = Encoder("webm", 24000, 24000)
    first = enc.encode(b"")
    assert first.startswith(bytes.fromhex("1A45DFA3")) and b"webm" in first and b"A_OPUS" in first
    data = first + enc.encode(sine(24000, 0.5).tobytes()) + enc.finish()
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].codec_context.name == "opus"


def test_aac_is_adts():
    enc = Encoder("aac", 24000, 24000)
    data = enc.encode(sine(24000, 0.5).tobytes()) + enc.finish()
    assert data[0] == 0xFF and data[1] & 0xF0 == 0xF0


def test_finish_is_final():
    enc = Encoder("mp3", 24000, 24000)
    enc.encode(sine(24000, 0.1).tobytes())
    assert enc.finish()
    assert enc.finish() == b""
    with pytest.raises(RuntimeError, match="mp3"):
        enc.encode(b"\x00\x00")
    with pytest.raises(RuntimeError):
        enc.drain()


@pytest.mark.parametrize("alias,name", [("raw", "pcm_s16le"), ("mulaw", "ulaw"), ("mp3", "mp3"), ("aac", "aac")])
def test_normalize_format(alias, name):
    assert normalize_format(alias) == name


@pytest.mark.parametrize("bad", ["flac", "MP3", "", None, "opus"])
def test_unknown_format_is_named_in_the_error(bad):
    with pytest.raises(ValueError) as info:
        normalize_format(bad)
    assert repr(bad) in str(info.value) and "pcm_s16le" in str(info.value)
    with pytest.raises(ValueError):
        Encoder(bad, 24000, 24000)


def test_sample_rate_defaults_and_validation():
    assert default_sample_rate("ulaw") == default_sample_rate("mulaw") == 8000
    assert {default_sample_rate(f) for f in REST_FORMATS if f != "ulaw"} == {24000}
    assert normalize_sample_rate(None, "ulaw") == 8000
    assert normalize_sample_rate(16000, "mp3") == 16000
    for bad in (44100, 0, True, "24000"):
        with pytest.raises(ValueError, match="sample_rate"):
            normalize_sample_rate(bad, "mp3")
    with pytest.raises(ValueError, match="22050"):
        Encoder("mp3", 22050, 24000)
    with pytest.raises(ValueError, match="source_rate"):
        Encoder("mp3", 24000, 0)


def test_content_types():
    assert [content_type(f) for f in REST_FORMATS] == [
        "audio/mpeg", "application/octet-stream", "application/octet-stream",
        "audio/wav", "audio/webm", "audio/wav", "audio/aac",
    ]
    assert content_type("raw") == "application/octet-stream"


def test_format_lists_match_the_protocol():
    assert codecs.STREAMING_FORMATS == ("mp3", "pcm_s16le", "pcm_f32le", "ulaw", "webm")
    assert codecs.REST_FORMATS[-2:] == ("wav", "aac")
    assert codecs.SAMPLE_RATES == (8000, 16000, 24000)


@pytest.mark.parametrize("fmt", STREAMING_FORMATS)
@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_position_stays_true_over_many_drains(fmt, rate):
    """Word timings are placed with ``position_seconds``: after a dozen turns
    (a drain each, as the server drains at every flush) a burst still sounds
    where the encoder said it would, within 5 ms."""
    burst = sine(rate, 0.2)
    rng = np.random.default_rng(7)
    enc = Encoder(fmt, rate, rate)
    out, expected = [], []
    for _ in range(12):
        out.append(enc.encode(np.zeros(int(rate * rng.uniform(0.05, 0.3)), "<i2").tobytes()))
        expected.append(enc.position_seconds)
        out.append(enc.encode(burst.tobytes()))
        out.append(enc.drain())
    out.append(enc.finish())
    samples, out_rate = decode(b"".join(out), fmt, rate)
    loud = np.abs(samples) > 0.1 * AMPLITUDE
    onsets = []
    for at in expected:  # the first loud sample near where the burst should be
        lo = max(0, int((at - 0.05) * out_rate))
        hits = np.flatnonzero(loud[lo:int((at + 0.1) * out_rate)])
        onsets.append((lo + hits[0]) / out_rate if len(hits) else float("nan"))
    errors = [round(float(o - e) * 1000, 1) for o, e in zip(onsets, expected)]
    assert all(abs(err) <= 5 for err in errors), f"burst onset minus position, ms, turn by turn: {errors}"
