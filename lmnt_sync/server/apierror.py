"""API errors and API-version policy shared by the REST and websocket sides.

Handlers raise :class:`ApiError` with one of LMNT's error slugs; the edge
(REST middleware or websocket session) renders it in the shape the client's
API version expects.

Version policy (PROTOCOL.md §5 item 1, decided here): a missing
``lmnt-version`` or one below 1.1 (e.g. ``"1.0"``) selects the legacy
shapes; ``"1.1"`` selects API 1.1; ``"1.2"``, anything higher and anything
unparseable (such as the date-style ``2025-09-25`` of old docs) select the
newest behaviour, API 1.2. Unknown versions are served rather than refused
because the only differences are response shapes, and the newest shape is
the best guess for a client newer than this server.

Status per slug (PROTOCOL.md §5 item 6, inferred): 400 invalid_request,
401 authentication (also for a wrong key, §5 item 5: the documented status,
not the 403 a third party observed), 402 payment_required, 403 permission,
404 not_found, 429 rate_limit, 500 internal_server.
"""
from __future__ import annotations

import json
import re
import secrets
from typing import Any, Dict, Optional, Union

from .. import spec

__all__ = [
    "ApiError",
    "STATUS_BY_SLUG",
    "LATEST_VERSION",
    "api_version",
    "rest_error_body",
    "new_request_id",
    "json_object",
    "speakable",
    "integer_field",
]

STATUS_BY_SLUG: Dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "payment_required_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "internal_server_error": 500,
}

#: Newest API version this server speaks.
LATEST_VERSION = spec.API_VERSION

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


class ApiError(Exception):
    """A request failed in a way the client must be told about.

    Attributes:
        slug: LMNT error type, a key of :data:`STATUS_BY_SLUG`.
        message: human-readable explanation (never contains an API key).
        status: HTTP status used on REST responses.
    """

    def __init__(self, slug: str, message: str, status: Optional[int] = None) -> None:
        """Create the error; ``status`` defaults to the slug's usual status."""
        super().__init__(message)
        self.slug = slug
        self.message = message
        self.status = status if status is not None else STATUS_BY_SLUG[slug]


def api_version(header: Optional[str]) -> Optional[str]:
    """Return ``"1.1"`` or ``"1.2"`` for a current client, None for legacy.

    Args:
        header: the ``lmnt-version`` value as sent (None when absent).
    """
    if header is None or not str(header).strip():
        return None
    match = _VERSION.match(str(header))
    if not match:
        return LATEST_VERSION
    version = (int(match.group(1)), int(match.group(2)))
    if version < (1, 1):
        return None
    return "1.1" if version == (1, 1) else LATEST_VERSION


def rest_error_body(error: ApiError, version: Optional[str]) -> Dict[str, Any]:
    """Return the JSON body for ``error`` in the shape ``version`` expects.

    Current clients get ``{"error": {"type", "message"}}``; legacy clients
    get ``{"message", "status"}`` for 401 and ``{"error": "<text>"}``
    otherwise, as LMNT's legacy API did (PROTOCOL.md §2.1).
    """
    if version is not None:
        return {"error": {"type": error.slug, "message": error.message}}
    if error.status == 401:
        return {"message": error.message, "status": 401}
    return {"error": error.message}


def new_request_id() -> str:
    """Return a fresh, unguessable request id (``req_`` + 24 hex digits)."""
    return "req_" + secrets.token_hex(12)


def json_object(raw: Union[str, bytes], what: str) -> Dict[str, Any]:
    """Decode ``raw`` as a JSON object; ``what`` names it in errors.

    Raises:
        ApiError: invalid_request_error when ``raw`` is not JSON (or nested
            too deeply for the decoder) or not an object.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        raise ApiError("invalid_request_error", f"{what} is not valid JSON") from None
    except RecursionError:  # e.g. 60 000 "[": json gives up on the nesting
        raise ApiError("invalid_request_error", f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError("invalid_request_error", f"{what} must be a JSON object")
    return value


def speakable(text: str, what: str) -> str:
    """Return ``text`` if it can be encoded as UTF-8 (so an engine can speak it).

    JSON escapes can carry unpaired surrogates (``"\\ud800"``), which are
    not Unicode text; they are the client's fault, not a synthesis failure.

    Raises:
        ApiError: invalid_request_error naming ``what``.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError("invalid_request_error", f"{what} contains an unpaired surrogate "
                       "(\\ud800-\\udfff); send valid Unicode text") from None
    return text


def integer_field(value: Any, name: str) -> int:
    """Return ``value`` as an int: an int, or a numeric string (the v2.0 SDK sends ``"24000"``).

    Raises:
        ApiError: invalid_request_error naming ``name`` and the value, for
            anything else (booleans, floats, words).
    """
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise ApiError("invalid_request_error", f"{name!r} must be an integer, not {str(value)[:40]!r}") from None
