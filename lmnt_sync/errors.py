"""Every exception lmnt_sync raises, under one root.

::

    LmntError
    ├── ConfigurationError (ValueError)        bad argument or missing setting
    │   ├── MissingAPIKeyError                 no key given and LMNT_API_KEY unset
    │   └── MissingDependencyError             an optional extra is not installed (names it)
    ├── LocalProtocolError (RuntimeError)      this program misused a session
    ├── TimeoutError (builtins.TimeoutError)   a blocking call ran out of its budget
    ├── APIConnectionError (ConnectionError)   could not reach the server / transport broke
    ├── ConnectionClosed                       the streaming connection has ended
    │   ├── ConnectionClosedOK                 ... normally (code 1000)
    │   └── ConnectionClosedError              ... abnormally; __cause__ tells why
    ├── ProtocolError                          the server sent something off-protocol
    ├── PlaybackError                          the audio device failed (open, write)
    └── APIError                               the server answered with an error
        ├── SessionError                       error message on a streaming session
        └── APIStatusError                     a REST call got a non-2xx status
            ├── BadRequestError                400
            ├── AuthenticationError            401
            ├── PermissionDeniedError          403
            ├── NotFoundError                  404
            ├── ConflictError                  409
            ├── UnprocessableEntityError       422
            ├── RateLimitError                 429
            └── InternalServerError            5xx

No exception, message or repr here ever contains the API key: errors are
built from the server's answer and our own wording only.
"""
from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "LmntError",
    "ConfigurationError",
    "MissingAPIKeyError",
    "LocalProtocolError",
    "TimeoutError",
    "APIConnectionError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ProtocolError",
    "APIError",
    "SessionError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "status_error_class",
    "MissingDependencyError",
    "PlaybackError",
]


class LmntError(Exception):
    """Root of every error raised by lmnt_sync."""


class ConfigurationError(LmntError, ValueError):
    """An argument or setting is invalid; the message names it."""


class MissingAPIKeyError(ConfigurationError):
    """No API key was given and the LMNT_API_KEY variable is not set."""


class LocalProtocolError(LmntError, RuntimeError):
    """The caller used a session in a way the protocol forbids (e.g. text after finish)."""


class TimeoutError(LmntError, builtins.TimeoutError):  # noqa: A001 - deliberate, subclasses the builtin
    """A blocking call did not complete within its timeout; the message states the budget."""


class APIConnectionError(LmntError, builtins.ConnectionError):
    """The server could not be reached, or the connection to it broke."""


class ConnectionClosed(LmntError):
    """The streaming connection has ended.

    Attributes:
        code: the websocket close code, or None when no close frame arrived.
        reason: the close reason sent by the server (may be empty).
    """

    def __init__(self, message: str, code: Optional[int] = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended normally (close code 1000)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended abnormally; ``__cause__`` holds the first error recorded."""


class ProtocolError(LmntError):
    """The server sent a message that breaks the protocol; the message summarises it."""


class APIError(LmntError):
    """The server answered with an error.

    Attributes:
        type: LMNT's error slug (e.g. ``authentication_error``), or None.
        message: the server's human-readable message.
        request_id: the server's request id, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        type: Optional[str] = None,  # noqa: A002 - LMNT's field name
        request_id: Optional[str] = None,
    ) -> None:
        self.type = type
        self.message = message
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.message]
        if self.type:
            parts.insert(0, f"[{self.type}]")
        if self.request_id:
            parts.append(f"(request id {self.request_id})")
        return " ".join(parts)


class SessionError(APIError):
    """The server sent an error message on a streaming session, then closed it."""


class APIStatusError(APIError):
    """A REST call got a non-2xx response.

    Attributes:
        status_code: the HTTP status.
        body: the decoded JSON body, or the raw text when it was not JSON.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        type: Optional[str] = None,  # noqa: A002
        request_id: Optional[str] = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(message, type=type, request_id=request_id)

    def _describe(self) -> str:
        return f"HTTP {self.status_code}: {super()._describe()}"


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key was missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422."""


class RateLimitError(APIStatusError):
    """HTTP 429."""


class InternalServerError(APIStatusError):
    """HTTP 5xx."""


_STATUS_CLASSES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """Return the APIStatusError subclass for an HTTP status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


class MissingDependencyError(ConfigurationError):
    """An optional dependency is missing; the message names the extra (and system package) to install."""


class PlaybackError(LmntError):
    """The audio output device could not be opened or failed while playing; the message says which."""
