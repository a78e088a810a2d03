"""Blocking synthesis steps that run in worker threads, never on the loop.

The engines are CPU-bound, so the event loop hands these functions to the
server's executor: :func:`encode_next` for streaming (one chunk at a time,
so the first audio leaves early) and :func:`synthesize_all` for responses
that need the whole audio first.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from .codecs import Encoder
from .engines.base import Engine, SpeechChunk
from .timeline import Timeline

__all__ = ["encode_next", "synthesize_all", "in_worker"]

T = TypeVar("T")


def encode_next(chunks: Iterator[SpeechChunk], encoder: Encoder) -> Optional[Tuple[SpeechChunk, bytes]]:
    """Synthesize and encode the next chunk; None when the text is done.

    Blocks for one chunk's synthesis. Not thread-safe per ``chunks``/``encoder``:
    callers run one step at a time per stream.
    """
    chunk = next(chunks, None)
    return None if chunk is None else (chunk, encoder.encode(chunk.pcm))


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


async def in_worker(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in ``executor`` and await its result."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
