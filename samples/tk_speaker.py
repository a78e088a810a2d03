"""A Tk window with Speak and Stop: Stop interrupts mid-sentence (barge-in).

Word captions reach the window through lmnt_sync.playback.callbacks.tk_executor, so the
player's thread never touches Tk. --demo clicks Speak, then Stop once the
third word is heard (so there is always speech to stop), then quits.
Needs the [play] extra and a display.

    python samples/tk_speaker.py [--demo]
"""
import os
import sys
import tkinter as tk

from lmnt_sync import Player, Speech
from lmnt_sync.playback.callbacks import tk_executor

TEXT = "This is a long sentence that you can stop at any moment by pressing the Stop button."


def main(argv=None):
    demo = "--demo" in (sys.argv[1:] if argv is None else argv)
    root = tk.Tk()
    root.title("lmnt_sync speaker")
    entry = tk.Entry(root, width=60)
    entry.insert(0, TEXT)
    caption = tk.Label(root, text="", font=("TkDefaultFont", 16))
    speech = Speech(local=not os.environ.get("LMNT_API_KEY"))
    conn = speech.synthesize_streaming("lily", format="pcm_s16le", sample_rate=24000, return_extras=True)
    heard = []

    def show(word):  # runs on the Tk thread (tk_executor)
        caption.config(text=word["text"])
        heard.append(word["text"])
        if demo and len(heard) == 3:
            stop_button.invoke()
            root.after_idle(root.destroy)

    player = Player(24000, on_word=show, callback_executor=tk_executor(root))
    player.play(conn)

    def speak():
        conn.append_text(entry.get() + " ")
        conn.flush()
        print("speak", flush=True)

    def stop():
        player.interrupt()  # silence now, drop queued audio, reset the server's buffer
        print(f"stop (last caption: {caption.cget('text')!r})", flush=True)

    speak_button = tk.Button(root, text="Speak", command=speak)
    stop_button = tk.Button(root, text="Stop", command=stop)
    for widget in (entry, speak_button, stop_button, caption):
        widget.pack(padx=8, pady=4)
    if demo:
        root.after_idle(speak_button.invoke)
    try:
        root.mainloop()
    finally:
        player.close()
        speech.close()  # closes the connection too
    return 0


if __name__ == "__main__":
    sys.exit(main())
