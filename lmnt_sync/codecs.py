"""Streaming audio encoders: engine PCM in, LMNT wire formats out.

An :class:`Encoder` takes signed 16-bit mono PCM at the engine's rate, in
chunks of any size, and returns bytes of the requested format at the
requested rate. The concatenation of everything it returns is one valid file
of that format, so a server can send each piece as soon as it is ready.

Pure objects: no I/O, no threads; one encoder per stream, not thread-safe.
Shared by the server (``lmnt_sync.server``) and the command line (which
encodes a file itself while playing); needs PyAV, numpy and soxr (the
``[server]`` extra), so nothing imports it at ``import lmnt_sync``.

Formats (PROTOCOL.md §2.7):

* ``pcm_s16le`` / ``pcm_f32le``: raw samples; free when no resampling.
* ``ulaw``: G.711 mu-law with a WAV header whose sizes are 0xFFFFFFFF
  ("unknown", read to end of stream), since the length is not known when
  the header has to go out.
* ``mp3``: MPEG layer III at 96 kbit/s (libmp3lame via PyAV), bare frames.
* ``webm``: Opus (libopus via PyAV) in a WebM container written here:
  ffmpeg's Matroska muxer holds a cluster back until the next packet
  arrives and PyAV cannot flush it, which would break :meth:`Encoder.drain`.
* ``aac``: AAC-LC (ffmpeg's encoder) in ADTS frames.
* ``wav``: 16-bit PCM WAV with exact sizes, so it is emitted whole by
  :meth:`Encoder.finish` (the non-streamable REST format).

Resampling uses a stateful ``soxr.ResampleStream`` so chunk joins are
seamless.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any, List, Optional, Sequence, Tuple

import av
import numpy as np
import soxr
from av.audio.codeccontext import AudioCodecContext

from . import spec

__all__ = [
    "STREAMING_FORMATS",
    "REST_FORMATS",
    "SAMPLE_RATES",
    "normalize_format",
    "default_sample_rate",
    "normalize_sample_rate",
    "content_type",
    "Encoder",
]

STREAMING_FORMATS = spec.SESSION_FORMATS
REST_FORMATS = STREAMING_FORMATS + ("wav", "aac")
SAMPLE_RATES = spec.SAMPLE_RATES

_ALIASES = {"raw": "pcm_s16le", "mulaw": "ulaw"}
_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "pcm_s16le": "application/octet-stream",
    "pcm_f32le": "application/octet-stream",
    "ulaw": "audio/wav",
    "webm": "audio/webm",
    "wav": "audio/wav",
    "aac": "audio/aac",
}
# Cap on silent frames drain() may add; far above what any codec here needs
# (libmp3lame needs 4), it only guards against a codec that never catches up.
_MAX_DRAIN_FRAMES = 16
_NO_SAMPLES = np.zeros(0, np.int16)


def normalize_format(fmt: str) -> str:
    """Return the canonical name of ``fmt``, resolving legacy aliases.

    ``raw`` means ``pcm_s16le`` and ``mulaw`` means ``ulaw``.

    Raises:
        ValueError: ``fmt`` is not a known format; the message names it and
            the allowed ones.
    """
    name = _ALIASES.get(fmt, fmt) if isinstance(fmt, str) else fmt
    if name not in REST_FORMATS:
        allowed = ", ".join(REST_FORMATS + tuple(_ALIASES))
        raise ValueError(f"unsupported audio format {fmt!r}; allowed: {allowed}")
    return name


def default_sample_rate(fmt: str) -> int:
    """Return the rate used when none is asked for: 8000 for ulaw, else 24000.

    Raises:
        ValueError: ``fmt`` is not a known format.
    """
    return 8000 if normalize_format(fmt) == "ulaw" else 24000


def normalize_sample_rate(sample_rate: Optional[int], fmt: str) -> int:
    """Return ``sample_rate``, or the format's default when it is ``None``.

    Raises:
        ValueError: the rate is not one of :data:`SAMPLE_RATES`, or ``fmt``
            is unknown.
    """
    if sample_rate is None:
        return default_sample_rate(fmt)
    if isinstance(sample_rate, bool) or sample_rate not in SAMPLE_RATES:
        allowed = ", ".join(map(str, SAMPLE_RATES))
        raise ValueError(f"unsupported sample_rate {sample_rate!r}; allowed: {allowed}")
    return int(sample_rate)


def content_type(fmt: str) -> str:
    """Return the HTTP Content-Type for ``fmt``.

    Raises:
        ValueError: ``fmt`` is not a known format.
    """
    return _CONTENT_TYPES[normalize_format(fmt)]


class Encoder:
    """Streaming encoder from int16 mono PCM at ``source_rate`` to ``fmt``.

    Args:
        fmt: a format name or legacy alias (see :func:`normalize_format`).
        sample_rate: output rate, one of :data:`SAMPLE_RATES`.
        source_rate: rate of the PCM given to :meth:`encode` (any positive).

    Raises:
        ValueError: unknown format, unsupported output rate, or a
            non-positive source rate.
    """

    def __init__(self, fmt: str, sample_rate: int, source_rate: int) -> None:
        self.format = normalize_format(fmt)
        self.sample_rate = normalize_sample_rate(sample_rate, self.format)
        if not isinstance(source_rate, int) or source_rate <= 0:
            raise ValueError(f"source_rate must be a positive int, got {source_rate!r}")
        self.source_rate = source_rate
        self._resampler = (
            _Resampler(source_rate, self.sample_rate) if source_rate != self.sample_rate else None
        )
        self._sink = _SINKS[self.format](self.sample_rate)
        self._carry = b""  # an odd trailing byte held until its sample completes
        self._held = _NO_SAMPLES  # output-rate samples encode(first_seconds=) kept back
        self._finished = False
        self._ratio = self.sample_rate / source_rate
        # Where the next input sample will sound in the decoded stream, in
        # output samples: the codec's delay, then every sample given (at the
        # output rate; soxr compensates its own filter delay), drain padding
        # included, audio dropped by drop_rest() excluded.
        self._position = float(self._sink.delay)

    def encode(self, pcm: bytes, first_seconds: Optional[float] = None) -> bytes:
        """Add PCM and return whatever encoded output is ready (may be b"").

        With ``first_seconds``, only the first that many seconds of this
        PCM are encoded now (after resampling, so the stream is the same as
        encoding it whole); the rest is held for :meth:`encode_rest`, which
        any later call runs first. Codecs cost CPU per sample, so the
        first packet of a long chunk leaves sooner this way.

        Raises:
            RuntimeError: :meth:`finish` was already called.
        """
        self._check_open()
        out = self.encode_rest()
        if self._carry or len(pcm) & 1:
            pcm = self._carry + bytes(pcm)
            cut = len(pcm) & ~1
            pcm, self._carry = pcm[:cut], pcm[cut:]
        self._position += len(pcm) // 2 * self._ratio
        if self._resampler is None and self.format == "pcm_s16le" and first_seconds is None:
            self._sink.decoded += len(pcm) // 2
            return out + bytes(pcm)  # fast path: the input already is the output
        samples = np.frombuffer(pcm, dtype="<i2")
        if self._resampler is not None:
            samples = self._resampler.push(samples)
        if first_seconds is not None:
            cut = max(0, int(first_seconds * self.sample_rate))
            samples, self._held = samples[:cut], samples[cut:]
        return out + self._sink.write(samples)

    def encode_rest(self) -> bytes:
        """Encode what ``encode(..., first_seconds=)`` held back; b"" if nothing.

        Raises:
            RuntimeError: :meth:`finish` was already called.
        """
        self._check_open()
        if not len(self._held):
            return b""
        held, self._held = self._held, _NO_SAMPLES
        return self._sink.write(held)

    def drop_rest(self) -> None:
        """Forget what ``encode(..., first_seconds=)`` held back (unwanted audio)."""
        self._position -= len(self._held)
        self._held = _NO_SAMPLES

    def drain(self) -> bytes:
        """Return all audio given so far, keeping the stream open.

        Codec frames are completed with silence, which stays in the stream
        (mp3: up to 5 frames of 576 samples for LAME's look-ahead; Opus: one
        or two 20 ms frames; aac: up to 4 frames of 1024). mp3 then goes on
        with a fresh LAME encoder, so later audio follows after its 1105-sample
        delay (46 ms at 24 kHz) rather than after the rest of that silence,
        which the old encoder still held. :attr:`padding_seconds` totals the
        time a drain adds. Raw PCM and
        ulaw add nothing, and resampling adds no time (see ``_Resampler``). The stream stays valid and later
        audio follows on. ``wav`` is not streamable and keeps everything for
        :meth:`finish`.

        Raises:
            RuntimeError: :meth:`finish` was already called.
        """
        out = self.encode_rest()
        if self._resampler is not None:
            out += self._sink.write(self._resampler.drain())
        padded = self._sink.padded
        out += self._sink.drain()
        self._position += self._sink.padded - padded
        return out

    def finish(self) -> bytes:
        """End the stream and return the remaining bytes.

        Afterwards the concatenation of everything returned is one valid
        file. Calling it again returns b"".
        """
        if self._finished:
            return b""
        out = self.encode_rest()
        self._finished = True
        if self._resampler is not None:
            out += self._sink.write(self._resampler.finish())
        return out + self._sink.finish()

    @property
    def is_codec(self) -> bool:
        """Return True for the formats that run a codec (mp3, webm, aac).

        Encoding those costs ~5-7 ms of CPU per second of audio; the others
        are a table look-up or a copy.
        """
        return isinstance(self._sink, _Framed)

    @property
    def cheap_drain(self) -> bool:
        """Return True when :meth:`drain` and :meth:`finish` do no real work.

        Raw PCM and ulaw at the engine's rate: no codec, no resampler
        filter to flush; only ulaw's header may still be due.
        """
        return self._resampler is None and self.format in ("pcm_s16le", "pcm_f32le", "ulaw")

    @property
    def padding_seconds(self) -> float:
        """Seconds of silence :meth:`drain` has inserted so far (codec frames).

        Audio given after a drain plays this much later than the input
        timeline says; a server keeping cumulative timestamps can add it.
        """
        return self._sink.padded / self.sample_rate

    @property
    def position_seconds(self) -> float:
        """Where the next PCM given to :meth:`encode` will sound, in seconds
        from the start of the decoded stream (codec delay and drain padding
        included). Word timings are placed with it."""
        return self._position / self.sample_rate

    @property
    def decoded_seconds(self) -> float:
        """How long the bytes returned so far play once decoded (a decoder
        that honours the stream's own skip, as Opus's pre-skip)."""
        return max(0, self._sink.decoded - self._sink.skip) / self.sample_rate

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"{self.format} encoder already finished")


class _Resampler:
    """Stateful int16 resampler; the filter state spans chunk joins.

    ``drain`` must get every sample out of soxr's filter without ending the
    stream, so it feeds silence; the output that silence produces is dropped
    (now or when it comes out later), so a drain adds no time to the stream,
    only a brief fade where the filter saw silence on one side of the join.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._ratio = out_rate / in_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
        self._fed = 0  # input samples fed to soxr, drain padding included
        self._produced = 0  # output samples soxr returned, dropped ones included
        # [start, end) output indexes that came from padding and are not all out
        # yet; one per drain, as a later drain may come before soxr caught up.
        self._drops: List[Tuple[int, int]] = []
        self._step = np.zeros(max(1, in_rate // 200), dtype=np.int16)  # 5 ms

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._fed += len(samples)
        return self._emit(self._stream.resample_chunk(samples))

    def drain(self) -> np.ndarray:
        target = round(self._fed * self._ratio)  # output index where real input ends
        pieces: List[np.ndarray] = []
        for _ in range(200):  # 1 s of padding at most; soxr needs < 0.1 s
            if self._produced >= target:
                break
            self._fed += len(self._step)
            if self._drops and self._drops[-1][0] == target:
                self._drops.pop()  # widened below
            self._drops.append((target, round(self._fed * self._ratio)))
            pieces.append(self._emit(self._stream.resample_chunk(self._step)))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int16)

    def finish(self) -> np.ndarray:
        return self._emit(self._stream.resample_chunk(np.zeros(0, np.int16), last=True))

    def _emit(self, out: np.ndarray) -> np.ndarray:
        start = self._produced
        self._produced += len(out)
        cuts = [(max(lo, start) - start, min(hi, self._produced) - start)
                for lo, hi in self._drops if lo < self._produced and hi > start]
        self._drops = [(lo, hi) for lo, hi in self._drops if hi > self._produced]
        if not cuts:
            return out
        # Cut the parts of this block that fall inside a padding range.
        keep = np.ones(len(out), dtype=bool)
        for cut_lo, cut_hi in cuts:
            keep[cut_lo:cut_hi] = False
        return out[keep]


class _Sink:
    """Turns int16 samples at the output rate into format bytes."""

    #: Decoded samples before the first input sample sounds (mp3: LAME's
    #: 576-sample encoder delay plus the decoder's 529, which mp3 streams
    #: carry no gapless header to remove; measured with PyAV at every rate).
    delay = 0

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.padded = 0  # samples of silence drain() inserted
        self.decoded = 0  # samples the bytes returned so far decode to
        self.skip = 0  # samples a decoder drops from the start (Opus pre-skip)

    def write(self, samples: np.ndarray) -> bytes:
        raise NotImplementedError

    def drain(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


class _PcmS16(_Sink):
    def write(self, samples: np.ndarray) -> bytes:
        self.decoded += len(samples)
        return samples.astype("<i2", copy=False).tobytes()


class _PcmF32(_Sink):
    def write(self, samples: np.ndarray) -> bytes:
        self.decoded += len(samples)
        scaled: np.ndarray = samples.astype("<f4") * np.float32(1 / 32768)
        return scaled.tobytes()


def _wav_header(rate: int, tag: int, bits: int, data_size: int) -> bytes:
    """RIFF/WAVE header for mono audio; sizes 0xFFFFFFFF mean 'unknown'."""
    block = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * block, block, bits)
    if tag != 1:
        fmt += b"\x00\x00"  # cbSize: non-PCM fmt chunks carry it
    riff = 0xFFFFFFFF if data_size == 0xFFFFFFFF else 4 + 8 + len(fmt) + 8 + data_size
    return (
        b"RIFF" + struct.pack("<I", riff) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", data_size)
    )


def _ulaw_table() -> np.ndarray:
    """G.711 mu-law code for every int16 value, indexed by the uint16 view.

    Follows the ITU/Sun reference coder (``g711.c``, as CPython's audioop):
    14-bit magnitude, clip at 8159, bias 33, segment = bit length.
    """
    s = np.arange(65536, dtype=np.int64).astype(np.uint16).view(np.int16).astype(np.int64) >> 2
    mask = np.where(s < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(s), 8159) + 0x21
    # segment: index of the first of 0x3F, 0x7F, ..., 0x1FFF that mag fits under
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


_ULAW: Optional[np.ndarray] = None


class _Ulaw(_Sink):
    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        global _ULAW
        if _ULAW is None:
            _ULAW = _ulaw_table()  # built once per process, ~1 ms
        self._table = _ULAW
        self._header: bytes = _wav_header(rate, 7, 8, 0xFFFFFFFF)

    def write(self, samples: np.ndarray) -> bytes:
        head, self._header = self._header, b""
        self.decoded += len(samples)
        return head + self._table[samples.view(np.uint16)].tobytes()

    def drain(self) -> bytes:
        return self.write(np.zeros(0, np.int16))  # the header, if not yet out

    finish = drain


class _Wav(_Sink):
    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._parts: List[bytes] = []

    def write(self, samples: np.ndarray) -> bytes:
        self._parts.append(samples.astype("<i2", copy=False).tobytes())
        return b""

    def finish(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return _wav_header(self.rate, 1, 16, len(data)) + data


class _Framed(_Sink):
    """Base for codecs that encode fixed-size frames through PyAV."""

    codec = ""
    sample_format = "s16"
    bit_rate = 0
    #: After a drain, go on with a fresh encoder rather than this one, which
    #: by then holds only the silence fed to push the audio out. Needs frames
    #: that stand alone in the stream (mp3's do; Opus in WebM has one header).
    fresh_after_drain = False

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._ctx = self._open()
        self._frame_size = self._ctx.frame_size
        self._pending = np.zeros(0, np.int16)
        self._pts = 0  # samples fed to the codec, padding included
        self._real = 0  # end (in samples) of the last real, non-padding sample
        self._covered = 0  # end of the input span the packets so far cover

    def _open(self) -> AudioCodecContext:
        ctx = av.CodecContext.create(self.codec, "w")
        if not isinstance(ctx, AudioCodecContext):  # the codecs named here are all audio codecs
            raise TypeError(f"{self.codec} is not an audio codec")
        ctx.sample_rate = self.rate
        ctx.layout = "mono"
        ctx.format = self.sample_format
        ctx.bit_rate = self.bit_rate
        ctx.time_base = Fraction(1, self.rate)
        ctx.open()
        return ctx

    def write(self, samples: np.ndarray) -> bytes:
        if len(samples) == 0:
            return self._wrap([])
        buf = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        usable = len(buf) - len(buf) % self._frame_size
        self._pending = buf[usable:]
        self._real = self._pts + usable + len(self._pending)
        packets: List[av.Packet[Any]] = []
        for start in range(0, usable, self._frame_size):
            packets.extend(self._encode(buf[start:start + self._frame_size]))
        return self._wrap(packets)

    def drain(self) -> bytes:
        if len(self._pending):
            self.padded += self._frame_size - len(self._pending)
        packets = self._flush_pending()
        silence = np.zeros(self._frame_size, np.int16)
        # Encoders keep look-ahead; feed silent frames until the packets
        # cover every real sample (packet pts count input samples).
        for _ in range(_MAX_DRAIN_FRAMES):
            if self._covered >= self._real:
                break
            self.padded += self._frame_size
            packets.extend(self._encode(silence))
        out = self._wrap(packets)
        if self.fresh_after_drain and self._covered >= self._real:
            # The old encoder would start the next audio behind the rest of that
            # silence (mp3: up to ~3 frames); a fresh one behind its own delay
            # only. The next sample now sounds at decoded + delay, not at
            # delay + every sample fed so far: account the difference as padding.
            self._ctx = self._open()
            self.padded += self.decoded - self._pts
            # Count the fresh encoder's input from where its audio starts, so
            # the next drain adds only what that drain shifts (adding
            # ``decoded - pts`` against the old count again would repeat every
            # earlier shift, and word timings would drift a turn at a time).
            self._pts = self._real = self._covered = self.decoded
        return out

    def finish(self) -> bytes:
        packets = self._flush_pending()
        packets.extend(self._packets(self._ctx.encode(None)))
        return self._wrap(packets) + self._trailer()

    def _flush_pending(self) -> List[av.Packet[Any]]:
        if not len(self._pending):
            return []
        frame = np.zeros(self._frame_size, np.int16)
        frame[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.int16)
        return self._encode(frame)

    def _encode(self, samples: np.ndarray) -> List[av.Packet[Any]]:
        if self.sample_format == "fltp":
            array = (samples.astype(np.float32) * np.float32(1 / 32768)).reshape(1, -1)
        else:
            array = samples.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(array, format=self.sample_format, layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += len(samples)
        return self._packets(self._ctx.encode(frame))

    def _packets(self, packets: Sequence[av.Packet[Any]]) -> List[av.Packet[Any]]:
        for packet in packets:
            self.decoded += packet.duration or self._frame_size
            if packet.pts is not None:
                self._covered = max(self._covered, packet.pts + (packet.duration or 0))
        return list(packets)

    def _wrap(self, packets: List[av.Packet[Any]]) -> bytes:
        """Frame packets for the container (default: bare concatenation)."""
        return b"".join(bytes(p) for p in packets)

    def _trailer(self) -> bytes:
        return b""


class _Mp3(_Framed):
    codec = "libmp3lame"
    delay = 576 + 529
    fresh_after_drain = True
    sample_format = "s16p"
    bit_rate = 96000


_ADTS_RATE_INDEX = {24000: 6, 16000: 8, 8000: 11}


class _Aac(_Framed):
    codec = "aac"
    sample_format = "fltp"
    bit_rate = 96000

    def _wrap(self, packets: List[av.Packet[Any]]) -> bytes:
        out = bytearray()
        for packet in packets:
            payload = bytes(packet)
            n = len(payload) + 7
            # ADTS: sync, MPEG-4, no CRC, AAC-LC, rate index, mono, length.
            rate_index = _ADTS_RATE_INDEX[self.rate]
            out += bytes((
                0xFF, 0xF1,
                (1 << 6) | (rate_index << 2),
                (1 << 6) | (n >> 11),
                (n >> 3) & 0xFF,
                ((n & 7) << 5) | 0x1F,
                0xFC,
            ))
            out += payload
        return bytes(out)


def _ebml_size(n: int) -> bytes:
    """EBML variable-length size (data size field) for ``n``."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | n).to_bytes(length, "big")
    raise ValueError(f"EBML element too large: {n} bytes")


def _ebml(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _ebml_size(len(payload)) + payload


def _ebml_uint(element_id: int, value: int) -> bytes:
    return _ebml(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


class _Webm(_Framed):
    codec = "libopus"
    sample_format = "s16"
    bit_rate = 64000

    # A SimpleBlock's time is an int16 offset (ms) from its cluster's time,
    # so a cluster must not span more than ~32 s; start a new one well before.
    _CLUSTER_MS = 10_000

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._header: bytes = self._container_header()
        self._emitted = 0  # samples of packets already placed in clusters

    def _container_header(self) -> bytes:
        head = bytes(self._ctx.extradata or b"")  # OpusHead from libopus
        pre_skip = struct.unpack_from("<H", head, 10)[0] if len(head) >= 12 else 0
        self.skip = pre_skip * self.rate // 48000  # decoders drop it (CodecDelay below)
        ebml = _ebml(0x1A45DFA3, b"".join((
            _ebml_uint(0x4286, 1), _ebml_uint(0x42F7, 1), _ebml_uint(0x42F2, 4),
            _ebml_uint(0x42F3, 8), _ebml(0x4282, b"webm"), _ebml_uint(0x4287, 4),
            _ebml_uint(0x4285, 2),
        )))
        info = _ebml(0x1549A966, b"".join((
            _ebml_uint(0x2AD7B1, 1_000_000),  # timestamps in ms
            _ebml(0x4D80, b"lmnt_sync"), _ebml(0x5741, b"lmnt_sync"),
        )))
        audio = _ebml(0xE1, _ebml(0xB5, struct.pack(">d", 48000.0)) + _ebml_uint(0x9F, 1))
        track = _ebml(0xAE, b"".join((
            _ebml_uint(0xD7, 1), _ebml_uint(0x73C5, 1), _ebml_uint(0x83, 2),
            _ebml(0x86, b"A_OPUS"), _ebml(0x63A2, head),
            _ebml_uint(0x56AA, pre_skip * 1_000_000_000 // 48000),  # CodecDelay, ns
            _ebml_uint(0x56BB, 80_000_000),  # SeekPreRoll 80 ms, as Opus advises
            audio,
        )))
        # Segment of unknown size (all-ones vint): the stream length is unknown.
        segment = bytes.fromhex("1853806701FFFFFFFFFFFFFF")
        return ebml + segment + info + _ebml(0x1654AE6B, track)

    def _wrap(self, packets: List[av.Packet[Any]]) -> bytes:
        head, self._header = self._header, b""
        out = [head]
        i = 0
        while i < len(packets):
            cluster_ms = self._emitted * 1000 // self.rate
            blocks = []
            while i < len(packets):
                offset = self._emitted * 1000 // self.rate - cluster_ms
                if offset > self._CLUSTER_MS:
                    break
                # track 1, int16 time offset, flags 0x80 = keyframe
                blocks.append(_ebml(0xA3, b"\x81" + struct.pack(">hB", offset, 0x80) + bytes(packets[i])))
                self._emitted += packets[i].duration or self._frame_size
                i += 1
            out.append(_ebml(0x1F43B675, _ebml_uint(0xE7, cluster_ms) + b"".join(blocks)))
        return b"".join(out)


_SINKS = {
    "pcm_s16le": _PcmS16,
    "pcm_f32le": _PcmF32,
    "ulaw": _Ulaw,
    "wav": _Wav,
    "mp3": _Mp3,
    "aac": _Aac,
    "webm": _Webm,
}
