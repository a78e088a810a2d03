"""API-key checks, as the cloud does them, without ever revealing a key.

REST calls carry the key in the ``X-API-Key`` header; websocket sessions
carry it in the init message (PROTOCOL.md §1.1), so both sides call
:meth:`Auth.check` with whatever the client presented.
"""
from __future__ import annotations

import hmac
from typing import Optional

from .apierror import ApiError

__all__ = ["Auth"]


class Auth:
    """Validates presented API keys.

    Args:
        api_key: the one accepted key, or None to accept any non-empty key
            (the ``python -m lmnt_sync.server`` default without a key).
    """

    def __init__(self, api_key: Optional[str]) -> None:
        self._key = api_key.encode("utf-8") if api_key is not None else None

    @property
    def accepts_any_key(self) -> bool:
        """Return True when any non-empty key is accepted."""
        return self._key is None

    def check(self, presented: Optional[str]) -> None:
        """Return if ``presented`` is acceptable; never blocks.

        Raises:
            ApiError: authentication_error (401) for a missing or wrong key.
                The message never contains either key.
        """
        if not presented:
            raise ApiError("authentication_error", "missing API key (send it as X-API-Key)")
        if self._key is None:
            return
        # compare_digest: the time taken must not reveal how much matched.
        # surrogatepass: a key decoded from bad bytes is wrong, not a crash.
        if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self._key):
            raise ApiError("authentication_error", "invalid API key")
