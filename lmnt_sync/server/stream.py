"""One websocket speech session: init, reader, text buffer, speaker.

Per connection two tasks run on the server's event loop:

* the **reader** parses client messages (:mod:`.wire`), feeds text to the
  :class:`~.buffering.TextBuffer` and queues work items (segments to speak,
  flush/reset acknowledgements, finish) in the order the client sent them;
* the **speaker** takes items one by one. A segment is synthesized chunk by
  chunk in the worker-thread executor (the engine is CPU-bound and must not
  block the loop), each chunk encoded there too (codec formats: its first
  250 ms in a step of its own, see :class:`.synthesis.ChunkSource`), and
  sent as soon as it is ready, so the first audio leaves after the first
  chunk. The first segment of a turn (the session's first, or the first
  after a flush or reset) starts just before its first sound: the engine's
  lead-in silence is cut (:mod:`.joins`), since the listener is waiting.

Ordering guarantees (PROTOCOL.md §1.5): an acknowledgement is queued behind
the segments it covers, so ``flush_complete`` follows all audio of its flush;
the encoder is drained first (:meth:`Encoder.drain`) so no audio of that
flush stays inside it. ``reset`` is a barge-in and drops all text not yet
spoken: the buffer, every segment still queued (earlier flushes' too; their
``flush_complete`` still goes out, in order), and the segment being spoken,
whose synthesis step in a worker is abandoned at once rather than awaited
(:meth:`SpeechSession._next_step`), so ``reset_complete`` does not wait for
the engine and no audio of the dropped text follows it. ``finish`` speaks the rest, ends the encoder
(:meth:`Encoder.finish`), sends the remaining audio and closes with 1000;
no ``flush_complete`` is sent for it. When the speaker runs out of work it
drains the encoder so the end of a sentence is not held back waiting for
more text.

Urgency: every worker job of a session carries a priority key
(:mod:`.scheduling`). The session estimates when its client runs out of
audio, assuming playback in real time from the first frame it sent after
the client last ran dry. The first segment of a turn goes before every
continuation (a listener is waiting for the first audio after a flush);
first segments among themselves, and continuations among themselves, are
ordered by when their client runs dry (for a client with nothing left to
play: the time the job was queued), so under load the sessions closest to
an underrun are served before those with seconds buffered.

Memory per session stays small: audio is never queued (each send awaits the
socket), and buffered plus queued text is capped by
:attr:`.state.Limits.max_buffered_chars`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Union

from aiohttp import WSMsgType, web

from ..codecs import Encoder
from .apierror import ApiError, new_request_id
from .buffering import TextBuffer
from .joins import has_sentence_mark
from .keepalive import Keepalive
from .scheduling import CONTINUATION, FIRST_AUDIO, Priority
from .state import STREAMING, ServerState
from .synthesis import ChunkSource, in_worker, submit_to_worker
from .timeline import Timeline
from .voices import VoiceRef
from .wire import (
    Finish,
    Flush,
    Generation,
    Reset,
    SessionConfig,
    Text,
    ack_frame,
    decode_json,
    detect_generation,
    error_frame,
    parse_command,
    parse_init,
    ready_frame,
    redact,
    timings_frame,
)

__all__ = ["handle_websocket", "SpeechSession"]

log = logging.getLogger("lmnt_sync.server")

Frame = Union[str, bytes]


@dataclass
class _Segment:
    text: str
    turn: int  # segments of one turn go between two flushes/resets
    continues: bool = False  # carries on a sentence the previous segment began
    opens_turn: bool = False  # the turn's first segment: its audio starts at the first sound
    cancelled: bool = False  # set by a reset
    stopped: Optional[asyncio.Future[None]] = None  # done once cancelled, while spoken

    def cancel(self) -> None:
        """Mark the segment unwanted and wake the speaker waiting on its audio."""
        self.cancelled = True
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result(None)


_Item = Union[_Segment, Flush, Reset, Finish]


async def handle_websocket(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Serve one ``/v1/ai/speech/stream`` connection until it closes.

    Raises:
        ApiError: rate_limit_error (HTTP 429, before the upgrade) when far
            more connections are open than sessions are allowed.
    """
    if len(state.connections) >= 2 * state.limits.max_sessions:
        raise ApiError("rate_limit_error", "too many open connections; try again later")
    request_id = new_request_id()
    ws = web.WebSocketResponse(
        max_msg_size=state.limits.transport_message_bytes,
        timeout=5.0,  # bounds close(): how long to wait for the client's close frame
        compress=False,  # audio does not deflate; compression would only cost CPU
        autoping=False,  # pings and pongs are seen by _receive (they show the peer alive)
    )
    ws.headers["request-id"] = request_id  # equals ready.request_id
    await ws.prepare(request)
    request[STREAMING] = True  # the upgrade is sent: errors go in-band now
    state.connections.add(ws)
    # Drops clients that vanished without closing, but not slow readers.
    keepalive = Keepalive(ws, request.transport, state.limits.ping_interval).start()
    try:
        session = await _open_session(ws, state, request_id, keepalive)
        if session is not None:
            await session.run()
    finally:
        state.connections.discard(ws)
        await keepalive.stop()
        if not ws.closed:
            await ws.close()
    return ws


async def _receive(ws: web.WebSocketResponse, keepalive: Keepalive) -> Any:
    """Return the next data or close message; answer pings on the way."""
    while True:
        msg = await ws.receive()
        keepalive.heard()
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is not WSMsgType.PONG:
            return msg


async def _open_session(
    ws: web.WebSocketResponse, state: ServerState, request_id: str, keepalive: Keepalive
) -> Optional[SpeechSession]:
    """Read and check the init message; on failure send the error and close."""
    frames = state.recorder.new_session()
    generation: Optional[Generation] = None
    try:
        init = decode_json(await _receive_init(ws, state, keepalive))
        state.recorder.record(frames, redact(init))
        generation = detect_generation(init)
        config = parse_init(init)
        state.auth.check(config.api_key)
        voice = state.voices.resolve(config.voice)
        if len(state.sessions) >= state.limits.max_sessions:
            raise ApiError("rate_limit_error", "too many concurrent sessions (limit "
                           f"{state.limits.max_sessions}); try again later")
    except _Closed:
        return None
    except Exception as exc:  # ApiError: the client's fault; anything else is ours
        await _send_error(ws, generation, _as_api_error(exc, request_id), request_id)
        return None
    return SpeechSession(ws, state, config, voice, request_id, frames, keepalive)


class _Closed(Exception):
    """The client went away before sending its init message."""


async def _receive_init(ws: web.WebSocketResponse, state: ServerState, keepalive: Keepalive) -> str:
    timeout = state.limits.init_timeout
    try:
        # One deadline for the init, however many pings come before it.
        msg = await asyncio.wait_for(_receive(ws, keepalive), timeout)
    except asyncio.TimeoutError:
        raise ApiError("invalid_request_error", f"no init message within {timeout:g} s") from None
    if msg.type is WSMsgType.BINARY:
        raise ApiError("invalid_request_error", "binary frames are not accepted; the first "
                       "message must be the JSON init message")
    if msg.type is not WSMsgType.TEXT:
        raise _Closed()
    text: str = msg.data
    _check_size(text, state.limits.max_message_bytes)
    return text


def _as_api_error(exc: Exception, request_id: str) -> ApiError:
    """Return ``exc`` if it is an ApiError; log anything else as our failure."""
    if isinstance(exc, ApiError):
        return exc
    log.exception("speech session %s failed", request_id)
    return ApiError("internal_server_error", f"internal error; request id {request_id}")


async def _send_error(ws: web.WebSocketResponse, generation: Optional[Generation],
                      err: ApiError, request_id: str) -> None:
    """Send ``err`` in the generation's shape, then close normally."""
    try:
        await ws.send_str(error_frame(generation, err, request_id))
    except ConnectionResetError:
        pass  # the client is gone; closing below is all that is left
    await ws.close(code=1000)


def _check_size(data: str, limit: int) -> None:
    # len() first: cheap, and a str never has more characters than bytes.
    if len(data) > limit or len(data.encode("utf-8")) > limit:
        raise ApiError("invalid_request_error", f"message of {len(data.encode('utf-8'))} bytes "
                       f"exceeds the limit of {limit} bytes; send text in smaller pieces")


class SpeechSession:
    """A websocket session after a successful init.

    Created by :func:`handle_websocket`; :meth:`run` serves it to the end.
    """

    def __init__(self, ws: web.WebSocketResponse, state: ServerState, config: SessionConfig,
                 voice: VoiceRef, request_id: str, frames: Optional[List[Dict[str, Any]]],
                 keepalive: Keepalive) -> None:
        self._ws = ws
        self._keepalive = keepalive
        self._state = state
        self._config = config
        self._engine = state.engines[voice.engine]
        self._voice = voice.voice
        self._request_id = request_id
        self._frames = frames
        self._buffer = TextBuffer()
        self._items: Deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._queued_chars = 0
        self._turn = 0  # bumped by flush and reset (see _Segment.turn)
        self._open_sentence = False  # the last segment queued this turn ended mid-sentence
        self._opened_turn = -1  # the last turn a segment was queued for
        self._speaking: Optional[_Segment] = None  # the segment being synthesized
        self._finished = False  # finish/eof received
        self._closing = False  # the speaker (or an error) is closing the socket
        self._announced_empty = False  # legacy: buffer_empty=true already sent
        self._send_lock = asyncio.Lock()
        rate = self._engine.sample_rate
        self._encoder = Encoder(config.format, config.sample_rate, rate)
        self._timeline = Timeline(config.cumulative_timestamps)
        self._sent = 0.0  # decoded seconds of the audio sent (every encoder output is sent)
        self._dry_at = 0.0  # monotonic time the client runs out of audio sent so far
        self._voiced_turn = -1  # turn of the last segment that sent audio
        self._idle_timer: Optional[asyncio.TimerHandle] = None  # see _arm_idle

    async def run(self) -> None:
        """Serve the session until it closes; never raises for client faults."""
        self._state.sessions.add(self)
        speaker = asyncio.ensure_future(self._speak())
        try:
            if self._config.generation is Generation.CURRENT:
                await self._send([ready_frame(self._request_id)])
            await self._read()
        except ConnectionResetError:
            pass  # the client vanished; nothing to tell it
        except Exception as exc:  # a bad client message (ApiError) or a bug of ours
            speaker.cancel()
            await _settle(speaker)
            await self._fail(_as_api_error(exc, self._request_id))
        finally:
            self._state.sessions.discard(self)
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            if not speaker.done() and not self._closing:
                speaker.cancel()
            await _settle(speaker)

    # -- reader ------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            msg = await _receive(self._ws, self._keepalive)
            if msg.type is WSMsgType.TEXT:
                self._on_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                raise ApiError("invalid_request_error", "binary frames are not accepted; "
                               "send JSON text frames")
            else:
                return

    def _on_text(self, data: str) -> None:
        _check_size(data, self._state.limits.max_message_bytes)
        message = decode_json(data)
        self._state.recorder.record(self._frames, redact(message))
        for command in parse_command(message):
            self._apply(command)

    def _apply(self, command: Any) -> None:
        if self._finished:
            raise ApiError("invalid_request_error", "the session is finishing: no messages "
                           "are accepted after finish/eof")
        if isinstance(command, Text):
            self._announced_empty = False
            self._queue_segments(self._buffer.push(command.text))
            self._check_backlog()
        elif isinstance(command, Reset):
            self._reset(command)
        else:  # Flush or Finish: both speak everything buffered now
            self._queue_segments(self._buffer.flush())
            self._turn += 1
            self._open_sentence = False
            self._put(command)
            self._finished = isinstance(command, Finish)
        self._arm_idle()

    def _arm_idle(self) -> None:
        """(Re)start the quiet-client timer of a turn's first segment.

        While a turn has not started, text waits for a clause boundary; if
        the client then sends nothing for ``idle_seconds`` the buffer may
        release what it holds (:meth:`TextBuffer.idle`).
        """
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._buffer.waiting_for_start and not self._finished:
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._buffer.rules.idle_seconds, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        self._queue_segments(self._buffer.idle())

    def _queue_segments(self, segments: Sequence[str]) -> None:
        for text in segments:
            self._queued_chars += len(text)
            opens, self._opened_turn = self._opened_turn != self._turn, self._turn
            self._put(_Segment(text, self._turn, continues=self._open_sentence, opens_turn=opens))
            self._open_sentence = not has_sentence_mark(text.split()[-1])

    def _check_backlog(self) -> None:
        backlog = self._buffer.pending_chars + self._queued_chars
        limit = self._state.limits.max_buffered_chars
        if backlog > limit:
            raise ApiError("invalid_request_error", f"too much text waiting ({backlog} characters; "
                           f"limit {limit}); send less text or wait for its audio")

    def _reset(self, command: Reset) -> None:
        """Drop every segment not yet spoken and stop the one being spoken.

        A reset is a barge-in: the listener wants silence now, so text an
        earlier flush committed is dropped too (its ``flush_complete`` still
        goes out, in order, before ``reset_complete``).
        """
        self._turn += 1
        self._open_sentence = False
        self._buffer.reset()
        kept: Deque[_Item] = deque()
        for item in self._items:
            if isinstance(item, _Segment):
                self._queued_chars -= len(item.text)
            else:
                kept.append(item)
        self._items = kept
        if self._speaking is not None:
            self._speaking.cancel()
        self._dry_at = 0.0  # the client drops what it holds
        self._put(command)

    def _put(self, item: _Item) -> None:
        self._items.append(item)
        self._wakeup.set()

    # -- speaker -----------------------------------------------------------

    async def _speak(self) -> None:
        try:
            while True:
                item = await self._next_item()
                if isinstance(item, _Segment):
                    await self._speak_segment(item)
                elif isinstance(item, (Flush, Reset)):
                    await self._acknowledge(item)
                else:
                    await self._finish()
                    return
        except ConnectionResetError:
            return  # the client vanished mid-send
        except Exception:  # engine or codec failure: tell the client, then close
            log.exception("speech session %s failed", self._request_id)
            await self._fail(ApiError("internal_server_error", "speech synthesis failed; "
                                      f"request id {self._request_id}"))

    async def _next_item(self) -> _Item:
        while not self._items:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._items.popleft()
        if isinstance(item, _Segment):
            self._queued_chars -= len(item.text)
        return item

    async def _speak_segment(self, segment: _Segment) -> None:
        self._state.characters += len(segment.text)
        source = ChunkSource(self._engine, segment.text, self._voice, self._encoder,
                             continues=segment.continues, opens_turn=segment.opens_turn)
        segment.stopped = asyncio.get_running_loop().create_future()
        self._speaking = segment
        try:
            while not segment.cancelled:
                step = await self._next_step(source, segment)
                if step is None:
                    break  # done, or a reset made this audio unwanted
                chunk, data, seconds = step
                self._timeline.add(chunk, source.position)  # timings go with the chunk's first piece
                await self._emit(data)
                self._played(seconds, segment)
        finally:
            self._speaking = None
        if segment.cancelled:
            self._encoder.drop_rest()  # a chunk's unsent pieces
        elif not self._items:
            await self._emit(await self._drain(), final=True)

    async def _next_step(self, source: ChunkSource, segment: _Segment) -> Any:
        """Run the source's next step in a worker; None when done or cancelled.

        A reset does not wait for the engine: the step is abandoned (it ends
        in its worker and its audio is dropped), unless it is encoding, which
        takes milliseconds and must end before the encoder is used again; its
        result is then returned (and sent, ahead of ``reset_complete``).
        """
        assert segment.stopped is not None
        step = submit_to_worker(self._state.executor, source.next_encoded,
                                priority=self.urgency(segment))
        try:
            await asyncio.wait((step, segment.stopped), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            step.cancel()  # the speaker itself is cancelled (session ending)
            raise
        if not segment.cancelled:
            return step.result()
        if source.abandon():
            step.cancel()  # drops the job if no worker took it yet
            step.add_done_callback(_ignore_result)
            return None
        await asyncio.wait((step,))  # encoding now: a few milliseconds
        # Its audio goes out before reset_complete (allowed: pre-reset audio),
        # so every byte the encoder made reaches the client and timings stay true.
        return step.result()

    async def _acknowledge(self, item: Union[Flush, Reset]) -> None:
        await self._emit(await self._drain(), final=True)
        kind = "flush" if isinstance(item, Flush) else "reset"
        ack = ack_frame(kind, item.nonce, item.style)
        if ack is not None:
            await self._send([ack])
        self._timeline.restart(self._encoder.decoded_seconds)

    async def _drain(self) -> bytes:
        """Drain the encoder (its padding is in :attr:`Encoder.position_seconds`)."""
        return await self._encoder_step(self._encoder.drain)

    async def _finish(self) -> None:
        await self._emit(await self._encoder_step(self._encoder.finish), final=True)
        self._closing = True
        await self._ws.close(code=1000)

    async def _emit(self, data: bytes, *, final: bool = False) -> None:
        """Send audio with its timing frame in the generation's order.

        ``final`` marks a drain point (nothing more is coming for now): then
        pending timings go out even without audio, and legacy extras tell
        whether the buffer is empty.
        """
        config = self._config
        # ``data`` is the encoder's latest output: the frame starts where the
        # audio sent before it ends.
        frame_start, self._sent = self._sent, self._encoder.decoded_seconds
        if not config.timings:
            if data:
                await self._send([data])
            return
        if not data and not final:
            return  # the encoder held the audio back; its timings wait with it
        if config.extras_before_audio:
            await self._emit_extras(data, final, frame_start)
            return
        words = self._timeline.take(frame_start)
        frames: List[Frame] = [data] if data else []
        if words:
            frames.append(timings_frame(config, words, False))
        if frames:
            await self._send(frames)

    async def _emit_extras(self, data: bytes, final: bool, frame_start: float) -> None:
        empty = final and self._buffer.is_empty and not self._items
        if not data and not self._timeline.has_pending and (not empty or self._announced_empty):
            return
        self._announced_empty = empty
        await self._send([timings_frame(self._config, self._timeline.take(frame_start), empty), data])

    # -- plumbing ----------------------------------------------------------

    def urgency(self, segment: Optional[_Segment] = None) -> Priority:
        """Return the priority key of this session's next worker job.

        ``segment``: the segment the job synthesizes, if any.
        """
        due = max(time.monotonic(), self._dry_at)  # when the client needs more audio
        if segment is not None and segment.turn != self._voiced_turn:
            return (FIRST_AUDIO, due)
        return (CONTINUATION, due)

    def _played(self, seconds: float, segment: _Segment) -> None:
        """Account ``seconds`` of audio just sent for ``segment``."""
        self._dry_at = max(self._dry_at, time.monotonic()) + seconds
        self._voiced_turn = segment.turn

    async def _encoder_step(self, fn: Callable[[], bytes]) -> bytes:
        """Run the encoder's drain or finish: inline when it does no work
        (two thread hand-offs per flush saved), else in a worker."""
        if self._encoder.cheap_drain:
            return fn()
        audio: bytes = await self._in_worker(fn)
        return audio

    async def _in_worker(self, fn: Any, *args: Any, segment: Optional[_Segment] = None) -> Any:
        return await in_worker(self._state.executor, fn, *args, priority=self.urgency(segment))

    async def _send(self, frames: Sequence[Frame]) -> None:
        # One lock per group keeps an audio frame and its timing frame together.
        async with self._send_lock:
            for frame in frames:
                if isinstance(frame, bytes):
                    await self._ws.send_bytes(frame)
                else:
                    await self._ws.send_str(frame)

    async def _fail(self, err: ApiError) -> None:
        self._closing = True
        await _send_error(self._ws, self._config.generation, err, self._request_id)


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned step's outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


async def _settle(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end, swallowing its cancellation."""
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
