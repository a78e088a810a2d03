"""The bounded queue between the receiver thread and the caller's iteration.

Like ``queue.Queue`` with what a session needs besides:

- It shares the session's lock, so a thread waiting for an acknowledgement
  can look at the inbox (is the receiver stuck on a full inbox? is anyone
  taking from it?) in the same critical section as the session's state.
- ``put`` blocks while ``bound`` messages are held (backpressure: the
  receiver stops reading and TCP pushes back on the server); ``end`` never
  blocks. The end marker is sticky: every later ``get``, from any thread,
  sees it too.
- ``abandon`` (the session is being closed) wakes every waiter at once:
  ``put`` gives up, ``get`` returns ``CLOSED``. Nothing polls.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, Final, Literal, Optional, Tuple, Union

from .messages import Message

__all__ = ["Inbox", "Item", "MessageItem", "END", "ERROR", "MESSAGE", "CLOSED"]

MESSAGE: Final = "message"
ERROR: Final = "error"
END: Final = "end"
#: What the inbox holds: a message with its reset epoch, the error that ended the session, the end.
MessageItem = Tuple[Literal["message"], int, Message]
Item = Union[
    MessageItem,
    Tuple[Literal["error"], BaseException],
    Tuple[Literal["end"], None],
    Tuple[Literal["closed"], None],
]
CLOSED: Tuple[Literal["closed"], None] = ("closed", None)  # what get() returns once the session is being closed


class Inbox:
    """A FIFO of received items, bounded for the receiver thread.

    Args:
        bound: most messages held before ``put`` blocks.
        lock: the session's lock; every method takes it (callers must not hold it).
        on_wait: called (lock held) when ``put`` starts waiting on a full
            inbox or ``get`` on an empty one, for whoever watches the session.
    """

    def __init__(self, bound: int, lock: threading.Lock, on_wait: Callable[[], None]) -> None:
        self.bound = bound
        self._items: Deque[Item] = deque()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._on_wait = on_wait
        self._abandoned = False
        self.blocked = False  # a put() is waiting for room (lock held to read)
        self.getters = 0  # threads waiting in get() (lock held to read)
        self._min_epoch = 0  # messages of an older reset epoch are stale: dropped, not held

    def qsize(self) -> int:
        """Items held now."""
        return len(self._items)

    def put(self, item: MessageItem) -> bool:
        """Append ``item``, blocking while full; False if the inbox was abandoned first."""
        with self._not_full:
            while len(self._items) >= self.bound and not self._abandoned:
                self.blocked = True
                self._on_wait()
                try:
                    self._not_full.wait()
                finally:
                    self.blocked = False
            if self._abandoned:
                return False
            if item[1] < self._min_epoch:
                return True  # audio of text a reset dropped: nobody will take it
            self._items.append(item)
            self._not_empty.notify()
        return True

    def end(self, items: Tuple[Item, ...]) -> None:
        """Append the session's last items (an error, the end marker); never blocks."""
        with self._not_empty:
            self._items.extend(items)
            self._not_empty.notify_all()

    def wake(self) -> None:
        """Make every ``get`` look at its ``cancelled`` again."""
        with self._not_empty:
            self._not_empty.notify_all()

    def taken_locked(self) -> bool:
        """True (lock held) if every message has been taken and a ``get`` waits for the next one.

        A message ``get`` returned may still be in its caller's hands; once
        that caller waits again, it is done with it. The end marker counts
        as taken: whoever gets it returns without waiting.
        """
        if any(item[0] == MESSAGE for item in self._items):
            return False
        return self.getters > 0 or bool(self._items) or self._abandoned

    def drop_stale(self, epoch: int) -> None:
        """Drop held messages older than reset ``epoch``, and any that arrive later.

        A reset's audio is thrown away when iterated anyway; dropping it at
        once frees the memory and unblocks a receiver waiting on a full inbox.
        """
        with self._not_full:
            self._min_epoch = max(self._min_epoch, epoch)
            kept = [item for item in self._items if item[0] != MESSAGE or item[1] >= self._min_epoch]
            if len(kept) != len(self._items):
                self._items = deque(kept)
                self._not_full.notify_all()

    def abandon(self) -> None:
        """Wake every waiter for good: ``put`` returns False, ``get`` returns ``CLOSED``."""
        with self._not_empty:
            self.abandon_locked()

    def abandon_locked(self) -> None:
        """``abandon`` for a caller already holding the session's lock."""
        self._abandoned = True
        self._items.clear()
        self._not_empty.notify_all()
        self._not_full.notify_all()

    def get(
        self,
        timeout: Optional[float],
        wait: Callable[[threading.Condition, Optional[float]], None],
        cancelled: Optional[Callable[[], bool]] = None,
    ) -> Optional[Item]:
        """Return the oldest item, waiting up to ``timeout`` s (None: no limit); None if none came.

        ``cancelled()`` (lock held) is re-checked whenever ``wake`` is called:
        once true, the wait ends with None.

        ``wait(condition, remaining)`` does one wait (the session's, which
        knows how to stay responsive to Ctrl-C); the clock is the caller's
        deadline, so spurious wake-ups just loop. The end marker is returned
        but left in place.
        """
        with self._not_empty:
            self.getters += 1
            try:
                while not self._items and not self._abandoned:
                    if (timeout is not None and timeout <= 0) or (cancelled is not None and cancelled()):
                        return None
                    self._on_wait()
                    wait(self._not_empty, timeout)
                    # One wait per call: the caller re-enters with its deadline.
                    timeout = None if timeout is None else -1.0
            finally:
                self.getters -= 1
            if self._abandoned:
                return CLOSED
            item = self._items[0]
            if item[0] != END:
                self._items.popleft()
                self._not_full.notify()
            return item
