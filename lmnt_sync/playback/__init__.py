"""Playback: speech heard as it arrives, on this machine's speakers or in a notebook's browser.

* ``player`` -- :class:`Player`, live playback through pyaudio (the ``[play]`` extra), with
  interruption and word callbacks as each word is heard;
* ``browser_player`` -- the same in a Jupyter page (the ``[notebook]`` extra);
* the parts they share: ``playsource`` (what a source yields), ``playbuffer`` (the jitter
  buffer), ``wordclock`` (when each word is heard), ``audio_device`` (the pyaudio stream),
  ``callbacks`` (running callbacks on a GUI's thread).

Nothing here knows the wire protocol: a source is bytes or the message dicts a session yields.
Importing this package imports no optional dependency.
"""
from .player import Player

__all__ = ["Player"]
