"""The ``lmnt-sync`` command line (``python -m lmnt_sync``).

* ``main`` -- arguments and subcommands (argparse); no business logic;
* ``speakjob`` -- the ``speak`` job: text in, audio to a file and/or the speakers;
* ``audiofile`` -- output files (format from the extension, written atomically);
* ``progress`` -- the progress line on a terminal.

It uses the client (``lmnt_sync``), playback (``lmnt_sync.playback``) and, to encode a file
while playing, ``lmnt_sync.codecs``, the encoders the server uses too.
"""
from .main import main

__all__ = ["main"]
