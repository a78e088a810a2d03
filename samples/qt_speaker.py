"""A Qt (PySide6) window with Speak and Stop and live captions: Stop interrupts mid-sentence.

Word captions reach the window through lmnt_sync.qt.qt_executor, so the
player's thread never touches a widget. --demo clicks Speak, then Stop once
three words have been heard, then quits. Needs the [play] and [qt] extras;
runs without a display with QT_QPA_PLATFORM=offscreen.

    python samples/qt_speaker.py [--demo]
"""
import os
import sys
import threading

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from lmnt_sync import Player, Speech
from lmnt_sync.qt import qt_executor

TEXT = "This is a long sentence that you can stop at any moment by pressing the Stop button."


class SpeakerWindow(QWidget):
    """Speak/Stop over one live session; ``captions`` keeps (word, thread id) as shown."""

    captioned = Signal(str)  # emitted after each caption is shown

    def __init__(self, speech, voice="lily", sample_rate=24000):
        super().__init__()
        self.setWindowTitle("lmnt_sync speaker")
        self.entry = QLineEdit(TEXT)
        self.speak_button = QPushButton("Speak")
        self.stop_button = QPushButton("Stop")
        self.caption = QLabel("")
        self.captions = []
        layout = QVBoxLayout(self)
        for widget in (self.entry, self.speak_button, self.stop_button, self.caption):
            layout.addWidget(widget)
        self.conn = speech.synthesize_streaming(voice, format="pcm_s16le", sample_rate=sample_rate,
                                                return_extras=True)
        self.player = Player(sample_rate, on_word=self.show_word, callback_executor=qt_executor(self))
        self.player.play(self.conn)
        self.speak_button.clicked.connect(self.speak)
        self.stop_button.clicked.connect(self.stop)

    def show_word(self, word):
        """Runs on the GUI thread (qt_executor), so it may touch the label."""
        self.caption.setText(word["text"])
        self.captions.append((word["text"], threading.get_ident()))
        self.captioned.emit(word["text"])

    def speak(self):
        self.conn.append_text(self.entry.text() + " ")
        self.conn.flush()
        print("speak", flush=True)

    def stop(self):
        self.player.interrupt()  # silence now, drop queued audio, reset the server's buffer
        print(f"stop (last caption: {self.caption.text()!r})", flush=True)

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        self.player.close()  # the connection is closed with its Speech
        super().closeEvent(event)


def main(argv=None):
    demo = "--demo" in (sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    speech = Speech(local=not os.environ.get("LMNT_API_KEY"))
    try:
        window = SpeakerWindow(speech)
        window.show()
        if demo:
            def after_word(_text):
                if len(window.captions) == 3:
                    window.stop_button.click()
                    window.close()
            window.captioned.connect(after_word)
            window.speak_button.click()
        app.exec()
    finally:
        speech.close()  # closes the connection too
    return 0


if __name__ == "__main__":
    sys.exit(main())
