"""The aiohttp application: LMNT's routes, REST and websocket on one port.

Routes (PROTOCOL.md §1-2)::

    GET    /v1/ai/speech/stream   websocket speech session (key in-band)
    POST   /v1/ai/speech/bytes    audio bytes
    POST   /v1/ai/speech          JSON: base64 audio + timings
    POST   /v1/ai/speech/convert  voice conversion: 501, not supported
    GET    /v1/ai/voice/list      voices (owner, starred)
    POST   /v1/ai/voice           create a voice (multipart)
    GET    /v1/ai/voice/{id}      voice info
    PUT    /v1/ai/voice/{id}      update a voice
    DELETE /v1/ai/voice/{id}      delete a voice
    GET    /v1/account            account and usage

A middleware gives every response a ``request-id`` header, checks the
``X-API-Key`` header of REST calls (websocket sessions check the key in
their init message) and renders every error, including aiohttp's own 404,
405 and 413, in the shape of the client's ``lmnt-version``
(see :mod:`.apierror`).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiohttp import web

from .. import spec
from . import rest
from .apierror import ApiError, api_version, new_request_id, rest_error_body
from .state import API_VERSION, REQUEST_ID, STREAMING, ServerState
from .stream import handle_websocket

__all__ = ["create_app", "STREAM_PATH", "STATE_KEY"]

log = logging.getLogger("lmnt_sync.server")

STREAM_PATH = spec.STREAM_PATH
STATE_KEY = rest.STATE_KEY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_SLUGS = {
    401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    429: "rate_limit_error",
}


def create_app(state: ServerState) -> web.Application:
    """Return the application serving ``state`` (nothing runs yet)."""
    app = web.Application(middlewares=[_api_middleware], client_max_size=1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_get(STREAM_PATH, _stream)
    app.router.add_post("/v1/ai/speech/bytes", rest.speech_bytes)
    app.router.add_post("/v1/ai/speech", rest.speech_detailed)
    app.router.add_post("/v1/ai/speech/convert", rest.speech_convert)
    app.router.add_get("/v1/ai/voice/list", rest.voice_list)
    app.router.add_post("/v1/ai/voice", rest.voice_create)
    app.router.add_get("/v1/ai/voice/{voice_id}", rest.voice_info)
    app.router.add_put("/v1/ai/voice/{voice_id}", rest.voice_update)
    app.router.add_delete("/v1/ai/voice/{voice_id}", rest.voice_delete)
    app.router.add_get("/v1/account", rest.account)
    app.on_shutdown.append(_close_websockets)
    return app


async def _stream(request: web.Request) -> web.StreamResponse:
    return await handle_websocket(request, request.app[STATE_KEY])


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = new_request_id()
    request[API_VERSION] = api_version(request.headers.get("lmnt-version"))
    try:
        if request.path != STREAM_PATH and request.match_info.http_exception is None:
            request.app[STATE_KEY].auth.check(request.headers.get("X-API-Key"))
        response = await handler(request)
    except Exception as exc:  # every failure becomes an LMNT-shaped error
        if request.get(STREAMING):
            raise  # headers are out: aiohttp can only drop the connection
        response = _error_response(request, _as_api_error(request, exc))
    if not response.prepared:
        response.headers.setdefault("request-id", request[REQUEST_ID])
    return response


def _as_api_error(request: web.Request, exc: Exception) -> ApiError:
    """Turn ``exc`` into an ApiError; unexpected ones are logged (call in except)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, web.HTTPException):
        return _from_http(request, exc)
    log.exception("request %s failed", request[REQUEST_ID])
    return ApiError("internal_server_error", f"internal error; request id {request[REQUEST_ID]}")


def _from_http(request: web.Request, exc: web.HTTPException) -> ApiError:
    slug = _HTTP_SLUGS.get(exc.status, "invalid_request_error" if exc.status < 500 else "internal_server_error")
    if exc.status in (404, 405):
        message = f"{exc.reason}: {request.method} {request.path[:200]}"
    else:
        message = exc.text or exc.reason
    return ApiError(slug, message, status=exc.status)


def _error_response(request: web.Request, err: ApiError) -> web.Response:
    body = rest_error_body(err, request[API_VERSION])
    return web.json_response(body, status=err.status)


async def _close_websockets(app: web.Application) -> None:
    """Close every websocket at shutdown (1001) so handlers can end."""
    state = app[STATE_KEY]
    # In parallel: each close may wait (bounded) for the client's reply.
    await asyncio.gather(
        *(ws.close(code=1001, message=b"server shutting down") for ws in list(state.connections)),
        return_exceptions=True,
    )
