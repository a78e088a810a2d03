"""Live playback with captions: each word is printed at the moment it is heard.

The session sends word timings (return_extras=True); the Player fires on_word
when the speakers reach each word. Needs the [play] extra.

    python samples/captions.py ["text to speak"]
"""
import os
import sys
import time

from lmnt_sync import Player, Speech

TEXT = ("Captions follow the voice. Every word appears when you hear it, "
        "not when it arrives from the network.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = " ".join(argv) or TEXT
    started = time.monotonic()

    def caption(word):
        print(f"[{time.monotonic() - started:5.2f}s] {word['text']}", flush=True)

    with Speech(local=not os.environ.get("LMNT_API_KEY")) as speech:
        conn = speech.synthesize_streaming("lily", format="pcm_s16le", sample_rate=24000,
                                           return_extras=True)
        with conn, Player(24000, on_word=caption) as player:
            player.play(conn)  # returns at once: playback runs in the player's thread
            conn.append_text(text)
            conn.finish()
            player.wait()  # until the last frame has been heard
    return 0


if __name__ == "__main__":
    sys.exit(main())
