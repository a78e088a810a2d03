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
__version__ = "0.1.0"

from .client import DEFAULT_BASE_URL, Speech  # noqa: E402
from .errors import *  # noqa: E402,F403 - the whole exception tree, listed in errors.__all__
from .errors import __all__ as _error_names  # noqa: E402
from .messages import (  # noqa: E402
    AudioMessage,
    FlushCompleteMessage,
    Message,
    ResetCompleteMessage,
    TimestampsMessage,
    WordTiming,
)
from .player import Player  # noqa: E402 - imports pyaudio only when a Player is created
from .session import StreamingConnection  # noqa: E402

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
