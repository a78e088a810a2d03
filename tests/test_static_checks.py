"""The repository's static checks, run by the one test command (and so by CI).

mypy --strict over the whole package (configured in setup.cfg [mypy]) and ruff over every
Python file of the repository (ruff.toml) must both pass; their output is the failure message.
A user's program written against the message types must type-check, and misuse must not.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_mypy_strict_is_clean():
    """`python -m mypy` (strict, every module of lmnt_sync, server included) finds nothing."""
    done = run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_ruff_is_clean():
    """`python -m ruff check` with the repository's rule set finds nothing."""
    done = run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


USER_PROGRAM = '''
from typing import List

from lmnt_sync import Message, Speech, WordTiming


def collect(speech: Speech) -> List[WordTiming]:
    words: List[WordTiming] = []
    with speech.synthesize_streaming("lily", return_extras=True) as conn:
        conn.append_text("Hello.")
        conn.finish()
        for message in conn:
            audio: bytes = message["audio"]  # every kind has audio
            if message["type"] == "timestamps":
                words.extend(message["timestamps"])
            elif message["type"] in ("flush_complete", "reset_complete"):
                nonce: int = message["nonce"]
            elif message["type"] == "audio":
                spoken: List[WordTiming] = message.get("durations", [])
    return words


def first(conn_message: Message) -> float:
    if conn_message["type"] == "timestamps":
        return conn_message["timestamps"][0]["start"]
    return 0.0
'''

MISUSE = '''
from lmnt_sync import Message


def nonce(message: Message) -> int:
    return message["nonce"]  # only the acknowledgements have one
'''


def check_program(tmp_path, source):
    """Type-check ``source`` as a user's file, strict, with the repository's mypy configuration."""
    program = tmp_path / "user_program.py"
    program.write_text(textwrap.dedent(source))
    return run("mypy", "--no-incremental", "--config-file", str(ROOT / "setup.cfg"), str(program))


def test_a_users_program_type_checks_against_the_message_types(tmp_path):
    """Narrowing on message["type"] gives each kind's keys; no cast needed."""
    done = check_program(tmp_path, USER_PROGRAM)
    assert done.returncode == 0, done.stdout + done.stderr


def test_misusing_a_message_is_a_type_error(tmp_path):
    """Reading "nonce" from any message is refused: audio and timestamps messages have none."""
    done = check_program(tmp_path, MISUSE)
    assert done.returncode == 1 and 'TypedDict "AudioMessage" has no key "nonce"' in done.stdout, done.stdout
