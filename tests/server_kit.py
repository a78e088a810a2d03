"""Raw-socket helpers for the server tests (websocket-client, requests, PyAV).

The server tests speak LMNT's wire directly, never through lmnt_sync's
client, so a client bug cannot hide a server bug.
"""
import io
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import av
import numpy as np
import websocket

WS_PATH = "/v1/ai/speech/stream"
CLOSE = websocket.ABNF.OPCODE_CLOSE
TEXT = websocket.ABNF.OPCODE_TEXT
BINARY = websocket.ABNF.OPCODE_BINARY


def ws_url(server) -> str:
    """Return the streaming websocket URL of ``server``."""
    return server.url.replace("http://", "ws://") + WS_PATH


def current_init(server, **fields) -> Dict[str, Any]:
    """Return an API 1.2 init message (pcm_s16le, timestamps on) with overrides."""
    init = {"X-API-Key": server.api_key, "lmnt-version": "1.2", "voice": "lily",
            "format": "pcm_s16le", "return_timestamps": True}
    init.update(fields)
    return {k: v for k, v in init.items() if v is not None}


def legacy_init(server, **fields) -> Dict[str, Any]:
    """Return a legacy init message (extras on, mp3) with overrides."""
    init = {"X-API-Key": server.api_key, "voice": "lily", "send_extras": True}
    init.update(fields)
    return {k: v for k, v in init.items() if v is not None}


def connect(server, init: Optional[Dict[str, Any]] = None, timeout: float = 10.0) -> websocket.WebSocket:
    """Open a websocket to ``server`` and send ``init`` (if given)."""
    ws = websocket.create_connection(ws_url(server), timeout=timeout)
    if init is not None:
        ws.send(json.dumps(init))
    return ws


def close(ws: websocket.WebSocket) -> None:
    """Close ``ws`` and its socket.

    websocket-client's close() returns early once it has answered the
    server's close frame, leaving the socket open until garbage collection;
    shutdown() releases it now.
    """
    ws.close()
    ws.shutdown()


def send(ws: websocket.WebSocket, *messages: Dict[str, Any]) -> None:
    """Send each message as one JSON text frame."""
    for message in messages:
        ws.send(json.dumps(message))


@dataclass
class Transcript:
    """What a client received: events in order, then the close code."""

    events: List[Tuple[str, Any]] = field(default_factory=list)
    close_code: Optional[int] = None

    @property
    def audio(self) -> bytes:
        """Return all binary frames joined."""
        return b"".join(data for kind, data in self.events if kind == "audio")

    def messages(self, key: str = "type", value: Optional[str] = None) -> List[Dict[str, Any]]:
        """Return JSON messages having ``key`` (equal to ``value`` if given)."""
        return [m for kind, m in self.events if kind == "json" and key in m
                and (value is None or m[key] == value)]

    def kinds(self) -> List[str]:
        """Return one label per event: 'audio', a message type, or a JSON key list."""
        labels = []
        for kind, data in self.events:
            if kind == "audio":
                labels.append("audio")
            else:
                labels.append(data.get("type") or ",".join(sorted(data)))
        return labels

    def words(self, key: str = "timestamps") -> List[str]:
        """Return every word of every timing message, in order."""
        return [w["text"] for m in self.messages(key) for w in m[key]]


def read(ws: websocket.WebSocket, until: Optional[str] = None, transcript: Optional[Transcript] = None) -> Transcript:
    """Read frames until the close frame, or until a JSON message of type ``until``."""
    transcript = transcript or Transcript()
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == CLOSE:
            transcript.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return transcript
        if opcode == BINARY:
            transcript.events.append(("audio", data))
            continue
        if opcode != TEXT:
            continue
        message = json.loads(data)
        transcript.events.append(("json", message))
        if until is not None and message.get("type") == until:
            return transcript


def decode(data: bytes, fmt: str, sample_rate: int) -> Tuple[int, float, bytes]:
    """Decode audio of ``fmt`` with PyAV; return (rate, seconds, int16 mono PCM).

    ``rate`` is the rate the stream declares; for Opus (webm) that is the
    input rate in OpusHead, since Opus always decodes at 48 kHz.
    """
    options: Dict[str, str] = {}
    container_format = None
    if fmt in ("pcm_s16le", "pcm_f32le"):
        container_format = "s16le" if fmt == "pcm_s16le" else "f32le"
        options = {"sample_rate": str(sample_rate), "ch_layout": "mono"}
    with av.open(io.BytesIO(data), format=container_format, options=options) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        pcm = bytearray()
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pcm += out.to_ndarray().tobytes()
        seconds = len(pcm) / 2 / stream.rate
        rate = _declared_rate(stream)
    return rate, seconds, bytes(pcm)


def _declared_rate(stream) -> int:
    extradata = bytes(stream.codec_context.extradata or b"")
    if stream.codec_context.name == "opus" and extradata.startswith(b"OpusHead"):
        return int.from_bytes(extradata[12:16], "little")
    return stream.rate


def onsets(pcm: bytes, rate: int, hop_seconds: float = 0.005) -> List[float]:
    """Return the times (s) where sound starts after silence in int16 mono ``pcm``.

    Meant for the synthetic engine's tone bursts, which are separated by
    50 ms of digital silence.
    """
    x = np.frombuffer(pcm, "<i2").astype(np.float32)
    hop = max(1, int(rate * hop_seconds))
    n = len(x) // hop
    rms = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    loud = rms > 0.1 * rms.max()
    return [i * hop / rate for i in range(n) if loud[i] and (i == 0 or not loud[i - 1])]


def synthetic_seconds(text: str, rate: int = 24000) -> float:
    """Return how long the synthetic engine speaks ``text`` (per its formula).

    The server normalises text before any engine ("3" is spoken "three").
    """
    from lmnt_sync.server.textnorm import normalize_text

    total = 0
    for word in normalize_text(text).split():
        total += int((0.060 + 0.040 * len(word)) * rate) + int(0.050 * rate)
    return total / rate


def decoded_or_api_error(fn, *args):
    """Return fn(*args), or the ApiError it raised (checked to be well formed)."""
    from lmnt_sync.server.apierror import STATUS_BY_SLUG, ApiError

    try:
        return fn(*args)
    except ApiError as err:
        assert err.slug in STATUS_BY_SLUG and err.status == STATUS_BY_SLUG[err.slug]
        assert isinstance(err.message, str) and err.message
        return err


def run_session(server, frames):
    """Send ``frames`` (dict: JSON, str: raw text, bytes: binary) and read to the close."""
    ws = connect(server)
    try:
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_binary(frame)
            else:
                ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        return read(ws)
    finally:
        close(ws)


class Neighbour:
    """A healthy current session that stays open while bad sessions come and go."""

    def __init__(self, server):
        self.ws = connect(server, current_init(server))
        assert read(self.ws, until="ready").kinds() == ["ready"]
        self.nonce = 0

    def ask(self, text):
        """Send ``text`` and a flush; the answer is read by :meth:`check`."""
        self.nonce += 1
        send(self.ws, {"type": "text", "text": text}, {"type": "flush", "nonce": self.nonce})

    def check(self, text):
        """The flush's words are exactly those of ``text``, with all their audio."""
        transcript = read(self.ws, until="flush_complete")
        while transcript.messages("type", "flush_complete")[0]["nonce"] != self.nonce:
            transcript = read(self.ws, until="flush_complete")  # left unread by a failed test
        assert transcript.words() == text.split()
        assert len(transcript.audio) == round(synthetic_seconds(text) * 24000) * 2
        assert transcript.messages("type", "flush_complete") == [{"type": "flush_complete", "nonce": self.nonce}]

    def finish(self):
        """End the session: it closes normally."""
        send(self.ws, {"type": "finish"})
        assert read(self.ws).close_code == 1000
        close(self.ws)


JsonOrBytes = Union[Dict[str, Any], bytes]
