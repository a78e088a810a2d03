"""Qt (PySide6) support: run word callbacks on the GUI thread.

::

    from lmnt_sync.qt import qt_executor
    player = Player(24000, on_word=lambda w: label.setText(w["text"]),
                    callback_executor=qt_executor())

Qt widgets may only be touched from the thread that owns them. The
executor's ``submit`` emits a signal of a small QObject living on the
application's thread; Qt queues the call there (a queued connection), so
nothing polls. Needs the ``[qt]`` extra (PySide6); it is imported when
``qt_executor`` is first called, not when this module is imported.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from .errors import ConfigurationError, MissingDependencyError

__all__ = ["QtExecutor", "qt_executor"]

log = logging.getLogger("lmnt_sync.callbacks")

_relay_class: Any = None


def _relay_type() -> Any:
    """Build (once) the QObject class whose signal carries calls to its thread."""
    global _relay_class
    if _relay_class is None:
        try:
            from PySide6.QtCore import QObject, Signal, Slot
        except ImportError as exc:
            raise MissingDependencyError("qt_executor needs PySide6: pip install 'lmnt-sync[qt]'") from exc

        class Relay(QObject):
            call = Signal(object)

            def __init__(self, parent: Any = None) -> None:
                super().__init__(parent)
                self.call.connect(self._run)  # auto connection: queued when emitted from other threads

            @Slot(object)
            def _run(self, item: Any) -> None:
                fn, args, kwargs = item
                try:
                    fn(*args, **kwargs)
                except Exception:  # a failing callback must not break the GUI's event loop
                    log.exception("callback %r failed", fn)

        _relay_class = Relay
    return _relay_class


class QtExecutor:
    """Runs submitted calls on the Qt application's thread, in submission order.

    ``submit`` never blocks and may be called from any thread. Once the
    relay object is gone (its parent widget destroyed, or the application
    quit), ``submit`` raises RuntimeError, which ``callbacks.dispatch`` logs.
    """

    def __init__(self, parent: Any = None) -> None:
        from PySide6.QtCore import QCoreApplication

        app = QCoreApplication.instance()
        if app is None:
            raise ConfigurationError("qt_executor() needs a QApplication: create it first")
        self._relay = _relay_type()(parent)
        if parent is None:
            self._relay.moveToThread(app.thread())  # calls run where the GUI runs, whoever created us

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)`` to run on the GUI thread; returns at once."""
        self._relay.call.emit((fn, args, kwargs))


def qt_executor(parent: Optional[Any] = None) -> QtExecutor:
    """Return an executor whose calls run on the Qt GUI thread (for ``callback_executor``).

    ``parent`` (a QObject on the GUI thread, e.g. the main window) ties the
    executor's lifetime to it; without one it lives on the application's thread.

    Raises:
        MissingDependencyError: PySide6 is not installed.
        ConfigurationError: no QApplication exists yet.
    """
    _relay_type()
    return QtExecutor(parent)
