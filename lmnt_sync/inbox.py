"""The bounded queue between whoever reads the socket and the caller's iteration.

Like ``queue.Queue`` with two differences the session needs:

- ``put`` blocks while the inbox holds ``bound`` items (backpressure: the
  receiver thread stops reading and TCP pushes back on the server), but
  ``put_now`` never blocks. A caller thread that reads the socket itself
  only does so when the inbox is empty, and must not wait on itself; the
  end-of-session items must not wait on a caller that has stopped reading.
  So the inbox holds at most ``bound`` items plus those few.
- The end marker is sticky: ``get`` returns it without removing it, so every
  later call, from any thread, sees the end too.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, List, Optional

__all__ = ["Inbox", "END", "ERROR", "MESSAGE"]

MESSAGE, ERROR, END = "message", "error", "end"
# Items: (MESSAGE, reset_epoch, dict) | (ERROR, exc) | (END, None)


class Inbox:
    """A FIFO of received items, bounded for the receiver thread."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._items: Deque[tuple] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def qsize(self) -> int:
        """Items held now."""
        return len(self._items)

    def empty(self) -> bool:
        """True if nothing is held."""
        return not self._items

    def put(self, item: tuple, give_up: Callable[[], bool], poll: float = 0.05) -> bool:
        """Append ``item``, blocking while full; False if ``give_up()`` turned true first.

        ``give_up`` is checked every ``poll`` seconds while blocked.
        """
        with self._not_full:
            while len(self._items) >= self.bound:
                if give_up():
                    return False
                self._not_full.wait(poll)
            self._items.append(item)
            self._not_empty.notify()
        return True

    def put_now(self, item: tuple) -> None:
        """Append ``item`` even if full; never blocks."""
        with self._lock:
            self._items.append(item)
            self._not_empty.notify()

    def put_front(self, items: List[tuple]) -> None:
        """Insert ``items`` ahead of everything held, in their order; never blocks."""
        with self._lock:
            self._items.extendleft(reversed(items))
            self._not_empty.notify()

    def get(self, timeout: Optional[float]) -> Optional[tuple]:
        """Return the oldest item, waiting up to ``timeout`` seconds; None if none came.

        The end marker is returned but left in place.
        """
        with self._not_empty:
            if not self._items:
                if timeout is not None and timeout <= 0:
                    return None
                self._not_empty.wait(timeout)
                if not self._items:
                    return None
            item = self._items[0]
            if item[0] != END:
                self._items.popleft()
                self._not_full.notify()
            return item
