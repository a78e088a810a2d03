"""The bounded queue between the receiver thread and the caller's iteration.

Like ``queue.Queue`` with what a session needs besides:

- It shares the session's lock, so a thread waiting for an acknowledgement
  can look at the inbox (is the receiver stuck on a full inbox? is anyone
  taking from it?) in the same critical section as the session's state.
- ``put_locked`` blocks while ``bound`` messages are held (backpressure: the
  receiver stops reading and TCP pushes back on the server); ``end`` never
  blocks. The end marker is sticky: every later ``get``, from any thread,
  sees it too.
- ``abandon`` (the session is being closed) wakes every waiter at once:
  ``put_locked`` gives up, ``get`` returns ``CLOSED``. Nothing polls.

A ``get`` that finds the inbox empty sleeps on a doorbell, a C
``queue.SimpleQueue`` of tokens rung after the item is in place and the
lock released, rather than on a ``threading.Condition``: handing one audio
frame to a waiting caller is the one step per frame that the receiver
thread adds to the caller's own work, and a Condition's wait and notify
(Python code: a fresh lock per wait, waking with the lock still held)
cost about twice a token's CPU (BENCHMARKS.md, session 6). A token rung
for a sleeper that had already woken wakes the next ``get`` early; that
``get`` finds nothing and returns None, which its caller treats as any
early wake-up (its deadline decides).
"""
from __future__ import annotations

import queue
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
        bound: most messages held before ``put_locked`` blocks.
        lock: the session's lock; every method takes it (callers must not hold it).
        on_wait: called (lock held) when ``put_locked`` starts waiting on a full
            inbox or ``get`` on an empty one, for whoever watches the session.
    """

    def __init__(self, bound: int, lock: threading.Lock, on_wait: Callable[[], None]) -> None:
        self.bound = bound
        self._items: Deque[Item] = deque()
        self._lock = lock
        self._not_full = threading.Condition(lock)
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()  # one token per wake-up rung
        self._sleepers = 0  # get() calls waiting for a token (lock held to read)
        self._on_wait = on_wait
        self._abandoned = False
        self.blocked = False  # a put_locked() is waiting for room (lock held to read)
        self.getters = 0  # threads waiting in get() (lock held to read)
        self._min_epoch = 0  # messages of an older reset epoch are stale: dropped, not held

    def qsize(self) -> int:
        """Items held now."""
        return len(self._items)

    def put_locked(self, item: MessageItem) -> bool:
        """Append ``item`` (lock held), waiting while full; return True if the caller must ring.

        Nothing is queued once the inbox is abandoned. True: a ``get``
        sleeps, and the caller must call ``ring()`` once it has released the
        lock, so the woken ``get`` does not wait for the lock.
        """
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
            return False  # audio of text a reset dropped: nobody will take it
        self._items.append(item)
        return self._sleepers > 0

    def ring(self) -> None:
        """Wake one sleeping ``get`` (lock not held; see ``put_locked``)."""
        self._bell.put(None)

    def end(self, items: Tuple[Item, ...]) -> None:
        """Append the session's last items (an error, the end marker); never blocks."""
        with self._lock:
            self._items.extend(items)
            self._ring_all_locked()

    def wake(self) -> None:
        """Make every ``get`` look at its ``cancelled`` again."""
        with self._lock:
            self._ring_all_locked()

    def _ring_all_locked(self) -> None:
        """Ring once for every sleeping ``get`` (lock held)."""
        for _ in range(self._sleepers):
            self._bell.put(None)

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
        """Wake every waiter for good: ``put_locked`` queues nothing, ``get`` returns ``CLOSED``."""
        with self._lock:
            self.abandon_locked()

    def abandon_locked(self) -> None:
        """``abandon`` for a caller already holding the session's lock."""
        self._abandoned = True
        self._items.clear()
        self._ring_all_locked()
        self._not_full.notify_all()

    def get(
        self,
        timeout: Optional[float],
        wait: Callable[[queue.SimpleQueue[None], Optional[float]], None],
        cancelled: Optional[Callable[[], bool]] = None,
    ) -> Optional[Item]:
        """Return the oldest item, waiting up to ``timeout`` s (None: no limit); None if none came.

        ``cancelled()`` (lock held) is re-checked whenever ``wake`` is called:
        once true, the wait ends with None.

        ``wait(bell, remaining)`` does one wait for a token of ``bell`` (the
        session's, which knows how to stay responsive to Ctrl-C; it returns
        without one when ``remaining`` runs out). The clock is the caller's
        deadline, so early wake-ups just loop there. The end marker is
        returned but left in place.
        """
        with self._lock:
            self.getters += 1
            try:
                while not self._items and not self._abandoned:
                    if (timeout is not None and timeout <= 0) or (cancelled is not None and cancelled()):
                        return None
                    self._on_wait()
                    self._sleepers += 1
                    self._lock.release()
                    try:
                        wait(self._bell, timeout)
                    finally:
                        self._lock.acquire()
                        self._sleepers -= 1
                    # One wait per call: the caller re-enters with its deadline.
                    timeout = None if timeout is None else -1.0
            finally:
                self.getters -= 1
            if self._abandoned:
                return CLOSED
            item = self._items[0]
            if item[0] != END:
                self._items.popleft()
                if self.blocked:
                    self._not_full.notify()
            return item
