"""Deadline: one time budget spent across the steps of a blocking operation."""
from __future__ import annotations

import time
from typing import Optional

from .errors import ConfigurationError, TimeoutError

__all__ = ["Deadline"]


class Deadline:
    """A time budget that starts when created and is never reset between steps.

    ``timeout=None`` means no limit; ``0`` or less means "poll once".
    """

    def __init__(self, timeout: Optional[float]) -> None:
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise ConfigurationError(f"timeout must be a number of seconds or None, not {timeout!r}")
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + max(timeout, 0.0)

    def remaining(self) -> Optional[float]:
        """Return seconds left (never negative), or None for no limit."""
        if self._end is None:
            return None
        return max(self._end - time.monotonic(), 0.0)

    def expired(self) -> bool:
        """Return True once the budget is spent."""
        return self._end is not None and time.monotonic() >= self._end

    def error(self, what: str) -> TimeoutError:
        """Build the TimeoutError for ``what``, stating the budget."""
        return TimeoutError(f"{what} did not complete within {self.timeout:g} s")
