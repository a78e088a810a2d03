"""The baseline of the playback benchmarks: websocket-client and pyaudio, nothing else.

The caller's thread does everything: it sends the text and a flush, then
reads frames and writes each audio frame straight into a blocking pyaudio
stream (pyaudio's defaults: PortAudio chooses the buffer size), until the flush is
acknowledged. This is about the least a program can do to play LMNT
speech; ``heard_latency.py`` and ``player_cost.py`` measure lmnt_sync's
``Player`` against it.
"""
from __future__ import annotations

import json
import time
from typing import Any, Dict, Optional

import websocket

__all__ = ["connect", "open_stream", "speak_turn"]


def connect(url: str, api_key: str, voice: str, rate: int = 24000) -> websocket.WebSocket:
    """Open an API 1.2 session for raw 16-bit PCM at ``rate``; blocks until connected.

    Word timestamps are asked for (and ignored), so the server sends what it
    sends a Player with ``return_extras=True``.
    """
    ws = websocket.create_connection(url.replace("http", "ws", 1) + "/v1/ai/speech/stream", timeout=60)
    ws.send(json.dumps({"X-API-Key": api_key, "lmnt-version": "1.2", "voice": voice,
                        "format": "pcm_s16le", "sample_rate": rate, "return_timestamps": True}))
    return ws


def open_stream(pa: Any, rate: int = 24000, frames_per_buffer: Optional[int] = None) -> Any:
    """A blocking pyaudio output stream, mono int16; pyaudio's default buffer size unless given."""
    import pyaudio

    sizes = {} if frames_per_buffer is None else {"frames_per_buffer": frames_per_buffer}
    return pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True, **sizes)


def speak_turn(ws: websocket.WebSocket, stream: Any, text: str, nonce: int) -> Dict[str, Any]:
    """Send ``text`` and a flush, play every audio frame until the flush is acknowledged.

    Returns the monotonic times of the flush and of the first audio frame
    (None if there was none) and the PCM received. Blocks while the stream
    plays (each write waits for room in the device buffer).
    """
    ws.send(json.dumps({"type": "text", "text": text}))
    flushed = time.monotonic()
    ws.send(json.dumps({"type": "flush", "nonce": nonce}))
    first = None
    pcm = bytearray()
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            if first is None:
                first = time.monotonic()
            pcm += data
            stream.write(data, exception_on_underflow=False)
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            if json.loads(data).get("type") == "flush_complete":
                return {"flushed": flushed, "first_byte": first, "pcm": bytes(pcm)}
        else:
            raise RuntimeError("the server closed the session during a turn")
