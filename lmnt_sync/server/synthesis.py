"""Blocking synthesis steps that run in worker threads, never on the loop.

The engines are CPU-bound, so the event loop hands these functions to the
server's executor: :meth:`ChunkSource.next_encoded` for streaming (one chunk
at a time, so the first audio leaves early; for codec formats the first
:data:`FIRST_PIECE_SECONDS` of each chunk in a step of its own) and :func:`synthesize_all` for
responses that need the whole audio first. Even creating an engine's chunk
iterator may run model code (or load weights on first use), so that too
happens in the worker.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from ..codecs import Encoder
from .engines.base import Engine, SpeechChunk
from .joins import join_chunks
from .scheduling import Priority, UrgencyExecutor
from .textnorm import speak_normalized
from .timeline import Timeline

__all__ = ["ChunkSource", "synthesize_all", "in_worker", "submit_to_worker", "FIRST_PIECE_SECONDS"]

T = TypeVar("T")

#: For codec formats, the audio of a chunk encoded and returned on its own
#: before the rest: LAME or Opus take ~1.5 ms for it instead of ~15 ms for a
#: whole sentence, so the first packet leaves sooner.
FIRST_PIECE_SECONDS = 0.25
_NO_AUDIO = SpeechChunk(b"")


class ChunkSource:
    """The chunks of one text, synthesized and encoded one step at a time.

    Callers run one step at a time per source (each step may run in a
    different worker thread); :meth:`abandon` may be called from any thread
    at any time.
    """

    def __init__(self, engine: Engine, text: str, voice: str, encoder: Encoder,
                 continues: bool = False, opens_turn: bool = False) -> None:
        """``continues``: ``text`` carries on a sentence the previous piece began
        (its padding at the join is trimmed); ``opens_turn``: its audio is the
        first of a turn (it starts just before its first sound). See :mod:`.joins`."""
        self._engine = engine
        self._continues = continues
        self._opens_turn = opens_turn
        self._text = text
        self._voice = voice
        self._encoder = encoder
        self._chunks: Optional[Iterator[SpeechChunk]] = None
        self._bytes_per_second = 2 * engine.sample_rate
        self._piece = FIRST_PIECE_SECONDS if encoder.is_codec else 0.0  # 0: chunks go whole
        self._rest = 0.0  # seconds of the current chunk the encoder holds back
        #: Where the chunk the last step returned sounds in the decoded
        #: stream (seconds; :attr:`Encoder.position_seconds` before encoding it).
        self.position = 0.0
        # abandon() against a step about to touch the encoder: after abandon()
        # returns True no step of this source uses the encoder again.
        self._lock = threading.Lock()
        self._abandoned = False
        self._encoding = False

    def abandon(self) -> bool:
        """Stop this source; return True when no step is using the encoder.

        A step still synthesizing finishes in its worker, but returns None
        without encoding. False means a step is encoding right now (a few
        milliseconds): wait for it before using the encoder. Never blocks.
        """
        with self._lock:
            self._abandoned = True
            return not self._encoding

    def _claim_encoder(self) -> bool:
        with self._lock:
            self._encoding = not self._abandoned
            return self._encoding

    def next_encoded(self) -> Optional[Tuple[SpeechChunk, bytes, float]]:
        """Return ``(chunk, encoded audio, seconds)`` for the next step; None when done
        or abandoned.

        A step is a whole chunk, or for codec formats a chunk in two pieces:
        its first :data:`FIRST_PIECE_SECONDS` (returned with the chunk, whose
        words all go on the timeline then), then the rest (returned with an
        empty chunk). ``seconds`` is the length of the PCM encoded in this
        step. The encoder resamples the whole chunk before it splits it
        (:meth:`Encoder.encode`), so the stream is the same as without pieces.

        Blocks for one chunk's synthesis (plus a model load on first use).
        """
        if self._rest:
            if not self._claim_encoder():
                return None
            rest, self._rest = self._rest, 0.0
            try:
                return _NO_AUDIO, self._encoder.encode_rest(), rest
            finally:
                self._encoding = False
        if self._abandoned:
            return None
        if self._chunks is None:
            self._chunks = speak(self._engine, self._text, self._voice, self._continues, self._opens_turn)
        chunk = next(self._chunks, None)
        if chunk is None or not self._claim_encoder():
            return None
        try:
            self.position = self._encoder.position_seconds
            seconds = len(chunk.pcm) / self._bytes_per_second
            if self._piece and seconds > 2 * self._piece:
                self._rest = seconds - self._piece
                return chunk, self._encoder.encode(chunk.pcm, first_seconds=self._piece), self._piece
            return chunk, self._encoder.encode(chunk.pcm), seconds
        finally:
            self._encoding = False


def speak(engine: Engine, text: str, voice: str, continues: bool = False,
          opens_turn: bool = False) -> Iterator[SpeechChunk]:
    """Return ``engine``'s chunks for ``text``, ready to send.

    The text is normalised first (:mod:`.textnorm`: numbers and symbols as
    words, timings kept on the client's words), then the padding at
    mid-sentence joins and, with ``opens_turn``, before the first sound is
    trimmed (:mod:`.joins`). Blocks (lazily, per chunk) while the engine runs.
    """
    chunks = speak_normalized(lambda spoken: engine.synthesize(spoken, voice), text, engine.sample_rate)
    return join_chunks(chunks, engine.name, engine.sample_rate, continues, opens_turn)


def synthesize_all(engine: Engine, text: str, voice: str,
                   encoder: Encoder) -> Tuple[bytes, List[Dict[str, Any]]]:
    """Return the whole encoded audio and word timings counted from its start.

    The audio starts just before its first sound, as a streamed turn does.
    Blocks for the full synthesis; finishes ``encoder``.
    """
    timeline = Timeline(cumulative=True)
    parts: List[bytes] = []
    for chunk in speak(engine, text, voice, opens_turn=True):
        timeline.add(chunk, encoder.position_seconds)
        parts.append(encoder.encode(chunk.pcm))
    parts.append(encoder.finish())
    return b"".join(parts), timeline.take()


async def in_worker(executor: Executor, fn: Callable[..., T], *args: Any,
                    priority: Optional[Priority] = None) -> T:
    """Run ``fn(*args)`` in ``executor`` and await its result.

    ``priority`` orders the job among those waiting when ``executor`` is an
    :class:`~.scheduling.UrgencyExecutor` (see there); otherwise it is ignored.
    """
    return await submit_to_worker(executor, fn, *args, priority=priority)


def submit_to_worker(executor: Executor, fn: Callable[..., T], *args: Any,
                     priority: Optional[Priority] = None) -> asyncio.Future[T]:
    """Start ``fn(*args)`` in ``executor``; return an awaitable for its result.

    Cancelling the returned future drops the job if no worker took it yet
    (a running job finishes; its result is discarded). Must be called on
    the event loop.
    """
    if priority is not None and isinstance(executor, UrgencyExecutor):
        return asyncio.wrap_future(executor.submit_at(priority, fn, *args))
    return asyncio.get_running_loop().run_in_executor(executor, fn, *args)
