"""ALSA's error messages go to our log, not to the terminal.

ALSA (libasound, under PortAudio on Linux) reports errors through one
process-wide handler whose default prints to stderr. While a device opens,
``audio_device.native_stderr_silenced`` discards the probing noise; during
playback it cannot (stderr is the program's own), yet ALSA still prints a
line for each underrun ("(snd_pcm_recover) underrun occurred"), which the
player recovers from by itself. ``route_to_log`` installs a handler that
logs each message at DEBUG on the ``lmnt_sync.playback`` logger instead.

The handler is a ctypes callback, so ALSA calls into Python: it is kept for
the life of the process and taken out again at exit (atexit), before the
interpreter it runs in is finalized. Without libasound (not Linux, no ALSA)
this does nothing. The handler is process-wide: one a program set itself
through ctypes before opening a Player is replaced (ALSA offers no way to
read the current one).
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import re
import sys
import threading
from typing import Any, Optional

__all__ = ["route_to_log"]

log = logging.getLogger("lmnt_sync.playback")

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...).
# ctypes cannot take variable arguments; the first one is read as a bare address, which is where
# Linux's calling conventions put it (the next argument register, or the next stack slot), and is
# read as a string only when the format says it is one ("%s occurred": "underrun").
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_char_p, ctypes.c_void_p)
# A printf conversion that takes no argument for its width or precision: flags, width,
# precision, length, then its letter (or a literal %%).
_CONVERSION = re.compile(rb"%[-+ #0]*[0-9]*(?:\.[0-9]+)?(?:hh|h|ll|l|q|j|z|t|L)?([a-zA-Z%])")

_lock = threading.Lock()
_installed: Optional[Any] = None  # the ctypes callback while installed: ALSA holds only its address


def _text(raw: Optional[bytes]) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def _message(fmt: bytes, first: Optional[int]) -> bytes:
    """``fmt`` with its first conversion filled in when that one is a plain string (``%s``).

    Anything else first (a number, a ``*`` width that takes an argument of its own, a form not
    understood) leaves ``fmt`` as it is: only then is ``first`` sure to be a string's address.
    """
    at = fmt.find(b"%")
    while at >= 0:
        match = _CONVERSION.match(fmt, at)
        if match is None:
            return fmt
        if match.group(1) != b"%":
            if match.group(1) == b"s" and first:
                return fmt[:at] + ctypes.string_at(first) + fmt[match.end():]
            return fmt
        at = fmt.find(b"%", match.end())
    return fmt


def _log_message(file: Optional[bytes], line: int, function: Optional[bytes], err: int,
                 fmt: Optional[bytes], first: Optional[int]) -> None:
    """The handler ALSA calls (on whichever thread hit the error); never raises into C."""
    try:
        text = _text(_message(fmt, first)) if fmt else ""
        log.debug("ALSA %s:%d (%s) %s", _text(file), line, _text(function), text)
    except Exception:  # an exception cannot cross into ALSA's C frames
        pass


def route_to_log() -> None:
    """Install the logging handler in libasound, once per process; never raises, never blocks long."""
    global _installed
    if not sys.platform.startswith("linux"):
        return
    with _lock:
        if _installed is not None:
            return
        name = ctypes.util.find_library("asound") or "libasound.so.2"
        try:
            asound = ctypes.CDLL(name)
            set_handler = asound.snd_lib_error_set_handler
        except (OSError, AttributeError):  # no ALSA here: nothing prints ALSA's messages either
            return
        set_handler.argtypes = [ctypes.c_void_p]
        set_handler.restype = ctypes.c_int
        callback = _HANDLER_TYPE(_log_message)
        if set_handler(ctypes.cast(callback, ctypes.c_void_p)) != 0:
            return
        _installed = callback
        atexit.register(_remove, set_handler)


def _remove(set_handler: Any) -> None:
    """Put ALSA's default handler back (at exit: no Python code may be called after this)."""
    global _installed
    with _lock:
        set_handler(None)
        _installed = None
