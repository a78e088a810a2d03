"""Blocking synthesis steps that run in worker threads, never on the loop.

The engines are CPU-bound, so the event loop hands these functions to the
server's executor: :meth:`ChunkSource.next_encoded` for streaming (one chunk
at a time, so the first audio leaves early) and :func:`synthesize_all` for
responses that need the whole audio first. Even creating an engine's chunk
iterator may run model code (or load weights on first use), so that too
happens in the worker.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from .codecs import Encoder
from .engines.base import Engine, SpeechChunk
from .scheduling import Priority, UrgencyExecutor
from .timeline import Timeline

__all__ = ["ChunkSource", "synthesize_all", "in_worker"]

T = TypeVar("T")


class ChunkSource:
    """The chunks of one text, synthesized and encoded one step at a time.

    Not thread-safe: callers run one step at a time per source (each step
    may run in a different worker thread).
    """

    def __init__(self, engine: Engine, text: str, voice: str, encoder: Encoder) -> None:
        self._engine = engine
        self._text = text
        self._voice = voice
        self._encoder = encoder
        self._chunks: Optional[Iterator[SpeechChunk]] = None

    def next_encoded(self) -> Optional[Tuple[SpeechChunk, bytes]]:
        """Return the next chunk and its encoded audio; None when done.

        Blocks for one chunk's synthesis (plus a model load on first use).
        """
        if self._chunks is None:
            self._chunks = iter(self._engine.synthesize(self._text, self._voice))
        chunk = next(self._chunks, None)
        return None if chunk is None else (chunk, self._encoder.encode(chunk.pcm))


def synthesize_all(engine: Engine, text: str, voice: str,
                   encoder: Encoder) -> Tuple[bytes, List[Dict[str, Any]]]:
    """Return the whole encoded audio and word timings counted from its start.

    Blocks for the full synthesis; finishes ``encoder``.
    """
    timeline = Timeline(engine.sample_rate, cumulative=True)
    parts: List[bytes] = []
    for chunk in engine.synthesize(text, voice):
        timeline.add(chunk)
        parts.append(encoder.encode(chunk.pcm))
    parts.append(encoder.finish())
    return b"".join(parts), timeline.take()


async def in_worker(executor: Executor, fn: Callable[..., T], *args: Any,
                    priority: Optional[Priority] = None) -> T:
    """Run ``fn(*args)`` in ``executor`` and await its result.

    ``priority`` orders the job among those waiting when ``executor`` is an
    :class:`~.scheduling.UrgencyExecutor` (see there); otherwise it is ignored.
    """
    if priority is not None and isinstance(executor, UrgencyExecutor):
        return await asyncio.wrap_future(executor.submit_at(priority, fn, *args))
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
