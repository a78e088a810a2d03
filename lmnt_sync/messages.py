"""The types of the messages a streaming session hands the caller.

``StreamingConnection.recv()`` and ``for message in connection`` give one
of these dicts; every kind has ``"audio"`` (bytes, ``b""`` when the message
carries none), so ``out.write(message["audio"])`` needs no check, and its
``"type"`` tells the kinds apart (a type checker narrows the union on it)::

    for message in conn:
        if message["type"] == "timestamps":
            for word in message["timestamps"]:
                print(word["text"], word["start"])
        out.write(message["audio"])

What is *not* a message: the server's ``ready`` (``wait_ready()`` returns
its request id) and its ``error`` (raised as ``SessionError``, with the
request id). Only with ``return_extras=True`` do the kinds besides
``"audio"`` appear. Types only: nothing here runs, imports nothing of ours.
"""
from __future__ import annotations

from typing import List, Literal, TypedDict, Union

__all__ = [
    "WordTiming",
    "AudioMessage",
    "TimestampsMessage",
    "FlushCompleteMessage",
    "ResetCompleteMessage",
    "Message",
]


class WordTiming(TypedDict):
    """When one word (or punctuation, or pause) is spoken, in seconds.

    On the current wire ``start`` counts from the first audio after the last
    flush or reset (API 1.2); in legacy ``durations`` it counts from the
    audio message the timings ride on.
    """

    text: str
    start: float
    duration: float


class _AudioFields(TypedDict):
    type: Literal["audio"]
    audio: bytes


class AudioMessage(_AudioFields, total=False):
    """Audio in the session's format: one binary frame of the stream.

    The legacy wire with ``return_extras=True`` adds the extras frame that
    preceded it: ``durations`` (word timings of this audio), ``buffer_empty``
    (True once everything flushed so far has been spoken), and the server's
    ``warning`` if it sent one.
    """

    durations: List[WordTiming]
    buffer_empty: bool
    warning: str


class TimestampsMessage(TypedDict):
    """Current wire, ``return_extras=True``: word timings of the audio just before; ``audio`` is ``b""``."""

    type: Literal["timestamps"]
    audio: bytes
    timestamps: List[WordTiming]


class FlushCompleteMessage(TypedDict):
    """Current wire, ``return_extras=True``: all audio of flush ``nonce`` came before; timings restart at 0.0."""

    type: Literal["flush_complete"]
    audio: bytes
    nonce: int


class ResetCompleteMessage(TypedDict):
    """Current wire, ``return_extras=True``: the server dropped its text for reset ``nonce``; timings restart at 0.0."""

    type: Literal["reset_complete"]
    audio: bytes
    nonce: int


#: What ``recv()`` returns and iteration yields.
Message = Union[AudioMessage, TimestampsMessage, FlushCompleteMessage, ResetCompleteMessage]
