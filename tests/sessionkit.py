"""Helpers for session tests: collect what a connection yields."""
from lmnt_sync.errors import TimeoutError as LmntTimeoutError


def words(messages):
    """Return the words of every timing in ``messages``, in order (both wires)."""
    out = []
    for message in messages:
        for stamp in message.get("timestamps", message.get("durations", [])):
            out.append(stamp["text"])
    return out


def audio(messages):
    """Return the concatenated audio bytes of ``messages``."""
    return b"".join(message["audio"] for message in messages)


def drain(conn):
    """Return every message already received, without waiting for more."""
    got = []
    while True:
        try:
            got.append(conn.recv(timeout=0))
        except LmntTimeoutError:
            return got
