"""The ``lmnt-sync`` command: speak, voices, account, serve.

Only argument parsing and reporting live here; the work is in
``speakjob``, ``Speech`` and ``lmnt_sync.server``. Errors print as one
``lmnt-sync: error: ...`` line with exit status 1 (2 for bad usage, 130
for Ctrl-C). Without ``LMNT_API_KEY`` the embedded local server is used,
and stderr says so. The API key is never printed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Iterator, List, Optional, Sequence

from . import __version__
from .errors import LmntError, MissingDependencyError

__all__ = ["main", "build_parser"]

PROG = "lmnt-sync"
DEFAULT_VOICE = "lily"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``lmnt-sync``."""
    parser = argparse.ArgumentParser(prog=PROG, description="LMNT text to speech from the command line "
                                     "(uses the offline local server when LMNT_API_KEY is not set).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    speak = commands.add_parser("speak", help="turn text into speech", description=(
        "Speak TEXT, or stdin line by line as it arrives (each line is flushed, so "
        "`some-llm | lmnt-sync speak --play` speaks while text comes)."))
    speak.add_argument("text", nargs="*", help="text to speak (default: read stdin)")
    speak.add_argument("-o", "--output", metavar="FILE",
                       help="write audio to FILE; the format comes from its extension "
                       "(.mp3 .wav .webm .pcm .raw .ulaw); - for stdout")
    speak.add_argument("--voice", default=DEFAULT_VOICE, help="voice id (default: %(default)s)")
    speak.add_argument("--format", help="session format for -o (mp3, pcm_s16le, pcm_f32le, ulaw, webm)")
    speak.add_argument("--sample-rate", type=int, default=24000, help="8000, 16000 or 24000 (default: %(default)s)")
    speak.add_argument("--language", help="language code (default: the server's)")
    speak.add_argument("--play", action="store_true",
                       help="play through the speakers as it streams (needs the [play] extra); "
                       "with a compressed -o file a second session is opened")
    voices = commands.add_parser("voices", help="list the voices")
    voices.add_argument("--json", action="store_true", help="print the full JSON")
    account = commands.add_parser("account", help="show plan and usage")
    account.add_argument("--json", action="store_true", help="print the full JSON")
    commands.add_parser("serve", add_help=False, help="run the local LMNT-compatible server "
                        "(options: lmnt-sync serve --help)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (blocks until the job is done)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:  # the server has its own parser; hand it everything after
        return _serve(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except LmntError as exc:
        return _fail(str(exc))
    except OSError as exc:  # files and pipes (the message names the path)
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def _run(args: argparse.Namespace) -> int:
    with _open_speech() as speech:
        if args.command == "voices":
            _print_voices(speech.list_voices(), args.json)
        elif args.command == "account":
            _print_account(speech.account_info(), args.json)
        else:
            _speak(speech, args)
    return 0


def _open_speech() -> Any:
    from .client import Speech

    if os.environ.get("LMNT_API_KEY"):
        return Speech()
    print(f"{PROG}: LMNT_API_KEY is not set: using the embedded local server (offline voices)",
          file=sys.stderr, flush=True)
    return Speech(local=True)


def _speak(speech: Any, args: argparse.Namespace) -> None:
    from .progress import Progress
    from .speakjob import open_sinks, speak

    output = args.output
    if output is None and not args.play:
        if sys.stdout.isatty():
            raise _usage_error("nothing to do: give -o FILE, --play, or redirect stdout")
        output = "-"
    progress = Progress()
    with _native_stderr_silenced(args.play):
        sinks = open_sinks(speech, args.voice, output=output, fmt=args.format, play=args.play,
                           sample_rate=args.sample_rate, language=args.language, progress=progress)
    try:
        texts = [" ".join(args.text)] if args.text else _stdin_lines()
        speak(sinks, texts, flush_each=not args.text, progress=progress)
    finally:
        progress.close()
        for sink in sinks:
            sink.close()


@contextlib.contextmanager
def _native_stderr_silenced(active: bool) -> Iterator[None]:
    """Hide what C libraries print while PortAudio probes devices (ALSA and JACK list
    every device they cannot open, dozens of lines); our errors are raised, not printed."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _stdin_lines() -> Iterator[str]:
    """Yield each non-empty line of stdin as soon as it is complete."""
    for line in sys.stdin:
        text = line.strip()
        if text:
            yield text + " "


def _print_voices(voices: List[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(voices, indent=2))
        return
    for voice in voices:
        print(f"{voice.get('id', ''):<16} {voice.get('name', ''):<16} {voice.get('gender') or '':<10} "
              f"{voice.get('owner') or ''}")


def _print_account(info: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key, value in _flatten(info):
        print(f"{key}: {value}")


def _flatten(value: Any, prefix: str = "") -> Iterator[Any]:
    """Yield (dotted.key, leaf value) pairs of nested dicts."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _serve(argv: List[str]) -> int:
    try:
        from .server import main as server_main
    except ImportError as exc:
        return _fail(str(MissingDependencyError("the local server needs the [server] extra: "
                                                "pip install 'lmnt-sync[server]'")) + f" ({exc})")
    return server_main(argv)


def _usage_error(message: str) -> LmntError:
    from .errors import ConfigurationError

    return ConfigurationError(message)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
