"""lmnt_sync: a blocking, thread-based client for LMNT's streaming speech API.

::

    from lmnt_sync import Speech
    with Speech() as speech:
        conn = speech.synthesize_streaming("lily", format="mp3")
        conn.append_text("Hello there.")
        conn.finish()
        with open("out.mp3", "wb") as out:
            for message in conn:
                out.write(message["audio"])

Optional parts import their dependencies lazily: ``lmnt_sync.server``
(``[server]`` extra) and ``lmnt_sync.Player`` (``[play]`` extra).
"""
from . import _moved
from ._version import __version__
from .client import DEFAULT_BASE_URL, Speech
from .errors import *  # noqa: F403 - the whole exception tree, listed in errors.__all__
from .errors import __all__ as _error_names
from .messages import (
    AudioMessage,
    FlushCompleteMessage,
    Message,
    ResetCompleteMessage,
    TimestampsMessage,
    WordTiming,
)
from .playback.player import Player  # imports pyaudio only when a Player is created
from .session import StreamingConnection

_moved.install()  # lmnt_sync.player, .callbacks, .browser_player: where they were before playback/

__all__ = [
    "__version__",
    "Speech",
    "StreamingConnection",
    "Player",
    "DEFAULT_BASE_URL",
    "Message",
    "AudioMessage",
    "TimestampsMessage",
    "FlushCompleteMessage",
    "ResetCompleteMessage",
    "WordTiming",
    *_error_names,
]
