"""The ``lmnt-sync`` command: speak, voices, account, serve.

Only argument parsing and reporting live here; the work is in
``speakjob``, ``Speech`` and ``lmnt_sync.server``. Errors print as one
``lmnt-sync: error: ...`` line with exit status 1 (2 for bad usage, 130
for Ctrl-C, 141 when stdout is a pipe closed early, as for SIGPIPE).
Arguments are checked before anything is started, so usage errors are
immediate. Without ``LMNT_API_KEY`` the embedded local server is used, and
stderr says so. The API key is never printed.
"""
from __future__ import annotations

import argparse
import codecs
import json
import os
import sys
from typing import IO, Any, Iterator, List, Optional, Sequence

from .._version import __version__
from ..errors import APIError, ConfigurationError, LmntError, MissingDependencyError, NotFoundError
from .audiofile import output_format

__all__ = ["main", "build_parser"]

PROG = "lmnt-sync"
DEFAULT_VOICE = "lily"
SESSION_FORMATS = ("mp3", "pcm_s16le", "pcm_f32le", "ulaw", "webm")
SAMPLE_RATES = (8000, 16000, 24000)
EXIT_USAGE, EXIT_BROKEN_PIPE = 2, 141
# Plain `account` output: the API's dotted keys, labelled (usage.characters counts what is left).
_ACCOUNT_LABELS = {
    "plan.type": "plan",
    "plan.character_limit": "character limit",
    "plan.commercial_use_allowed": "commercial use allowed",
    "usage.characters": "characters remaining",
}


class UsageError(Exception):
    """The command line itself is wrong (exit status 2)."""


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
    speak.add_argument("-f", "--file", metavar="TEXTFILE", help="speak the text in TEXTFILE (any length)")
    speak.add_argument("-o", "--output", metavar="FILE",
                       help="write audio to FILE; the format comes from its extension "
                       "(.mp3 .wav .webm .pcm .raw .ulaw); - for stdout")
    speak.add_argument("--voice", default=DEFAULT_VOICE, help="voice id (default: %(default)s)")
    speak.add_argument("--format", choices=SESSION_FORMATS, help="session format for -o (%(choices)s)")
    speak.add_argument("--sample-rate", type=int, default=24000, choices=SAMPLE_RATES, metavar="RATE",
                       help="8000, 16000 or 24000 (default: %(default)s)")
    speak.add_argument("--encoding", default="utf-8",
                       help="encoding of stdin or TEXTFILE (default: %(default)s)")
    speak.add_argument("--encoding-errors", default="strict", choices=("strict", "replace", "ignore"),
                       help="what to do with bytes the encoding cannot read: stop with an error "
                       "(default), replace them, or drop them")
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
        if args.command == "speak":
            _check_speak_args(args)
        return _run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`lmnt-sync voices | head -1`): not an error
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except LmntError as exc:
        return _fail(str(exc))
    except OSError as exc:  # files and pipes (the message names the path)
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def _check_speak_args(args: argparse.Namespace) -> None:
    """Check everything about ``speak`` that can be known before connecting.

    Sets ``args.output`` to ``-`` when audio goes to a redirected stdout.

    Raises:
        UsageError: what is wrong, in one line.
    """
    if args.text and args.file:
        raise UsageError("give the text as arguments or with --file, not both")
    if args.text and not " ".join(args.text).strip():
        raise UsageError("nothing to speak: the text is empty")
    if args.file and not os.path.isfile(args.file):
        raise UsageError(f"--file {args.file}: no such file")
    try:
        codecs.lookup(args.encoding)
    except LookupError:
        raise UsageError(f"--encoding {args.encoding}: unknown encoding") from None
    if args.output is None and not args.play:
        if sys.stdout.isatty():
            raise UsageError("nothing to do: give -o FILE, --play, or redirect stdout")
        args.output = "-"
    if args.output is None or args.output == "-":
        return
    folder = os.path.dirname(args.output) or "."
    if os.path.isdir(args.output):
        raise UsageError(f"-o {args.output} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"-o {args.output}: the folder {folder} does not exist")
    try:
        output_format(args.output, args.format)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    with _open_speech() as speech:
        if args.command == "voices":
            _print_voices(speech.list_voices(), args.json)
        elif args.command == "account":
            _print_account(speech.account_info(), args.json)
        else:
            try:
                _speak(speech, args)
            except APIError as exc:
                raise _explained(speech, args.voice, exc) from exc
    return 0


def _open_speech() -> Any:
    from ..client import Speech

    if os.environ.get("LMNT_API_KEY"):
        return Speech()
    print(f"{PROG}: LMNT_API_KEY is not set: using the embedded local server (offline voices)",
          file=sys.stderr, flush=True)
    return Speech(local=True)


def _speak(speech: Any, args: argparse.Namespace) -> None:
    from .progress import Progress
    from .speakjob import open_sinks, speak

    progress = Progress()
    sinks = open_sinks(speech, args.voice, output=args.output, fmt=args.format, play=args.play,
                       sample_rate=args.sample_rate, language=args.language, progress=progress)
    done = False
    try:
        if args.text:
            # Arguments that were not valid in the locale's encoding arrive with their bytes
            # smuggled in as surrogates (PEP 383): read those bytes with --encoding instead.
            joined = _decode(os.fsencode(" ".join(args.text)), "the text argument", args.encoding,
                             args.encoding_errors)
            sent = speak(sinks, [joined], flush_each=False, progress=progress)
        elif args.file:
            with open(args.file, "rb") as text_file:
                texts = [_decode(text_file.read(), args.file, args.encoding, args.encoding_errors)]
            sent = speak(sinks, texts, flush_each=False, progress=progress)
        else:
            sent = speak(sinks, _stdin_lines(sys.stdin.buffer, args.encoding, args.encoding_errors),
                         flush_each=True, progress=progress)
        if not sent:
            raise ConfigurationError("stdin held no text: nothing was spoken or written")
        done = True
    finally:
        progress.close()
        for sink in sinks:
            sink.close(keep=done)


def _explained(speech: Any, voice: str, error: APIError) -> LmntError:
    """Return a command-line explanation of ``error`` when it is an unknown voice, else ``error``."""
    try:
        speech.voice_info(voice)
    except NotFoundError:
        return ConfigurationError(f"unknown voice {voice!r}: `{PROG} voices` lists the voices")
    except LmntError:
        pass
    return error


def _stdin_lines(stream: IO[bytes], encoding: str, errors: str) -> Iterator[str]:
    """Yield each non-empty line of ``stream``, decoded, as soon as it is complete.

    Raises:
        ConfigurationError: a line is not valid ``encoding`` (names the line).
    """
    for number, line in enumerate(stream, 1):
        text = _decode(line, "stdin", encoding, errors, number).strip()
        if text:
            yield text + " "


def _decode(data: bytes, where: str, encoding: str, errors: str, line: Optional[int] = None) -> str:
    try:
        return data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        if line is None:
            line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigurationError(
            f"{where} line {line} is not valid {encoding} (byte 0x{data[exc.start]:02x}); pass --encoding "
            "with the text's encoding (e.g. --encoding latin-1), or --encoding-errors replace") from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
        print(f"{_ACCOUNT_LABELS.get(key, key)}: {value}")


def _flatten(value: Any, prefix: str = "") -> Iterator[Any]:
    """Yield (dotted.key, leaf value) pairs of nested dicts."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _serve(argv: List[str]) -> int:
    try:
        from ..server import main as server_main
    except MissingDependencyError as exc:
        return _fail(str(exc))
    return server_main(argv)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
