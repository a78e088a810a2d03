"""A voice chatbot that keeps one streaming connection for the whole conversation.

Each reply is sent as text and flushed, so the server speaks it at once, and the
same connection waits for the next turn. Lines come from stdin (one per turn) or,
with --script or on a terminal, from a scripted conversation. The "bot" is a
local stand-in: swap reply() for your LLM. Needs the [play] extra for the speakers.

    printf 'Hello\nWhat time is it?\n' | python samples/chatbot.py
"""
import argparse
import os
import sys
import time

from lmnt_sync import Player, Speech

SCRIPT = ["Hello there!", "What can you do?", "Thanks, goodbye."]


def reply(line):
    """Answer one user line (a stand-in for an LLM)."""
    if "time" in line.lower():
        return f"It is {time.strftime('%H:%M')}."
    if "bye" in line.lower():
        return "Goodbye, it was nice talking to you."
    return f"You said: {line.strip()}. Tell me more."


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", action="store_true", help="use the scripted conversation")
    parser.add_argument("--voice", default="lily")
    args = parser.parse_args(argv)
    lines = SCRIPT if args.script or sys.stdin.isatty() else (line for line in sys.stdin if line.strip())

    with Speech(local=not os.environ.get("LMNT_API_KEY")) as speech, Player(24000) as player:
        conn = speech.synthesize_streaming(args.voice, format="pcm_s16le", sample_rate=24000)
        player.play(conn)  # one connection, one player, for every turn
        for line in lines:
            answer = reply(line)
            print(f"you: {line.strip()}\nbot: {answer}", flush=True)
            conn.append_text(answer)
            conn.flush(wait=True)  # the whole reply has arrived...
            player.wait_idle()  # ...and has been heard: next turn
        conn.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
