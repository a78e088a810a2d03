"""LMNT's REST API over one requests.Session, with retries and timeouts.

Retries follow the official SDK: connection errors and HTTP 408, 409, 429
and 5xx are retried (twice by default) with exponential backoff, honouring
Retry-After. Non-2xx answers become typed errors in ``_raise_for_status``,
the one place that reads error bodies. No websockets, no threads.
"""
from __future__ import annotations

import base64
import json
import os
import urllib.parse
from typing import Any, BinaryIO, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import spec
from ._version import __version__
from .errors import APIConnectionError, ConfigurationError, ProtocolError, status_error_class
from .errors import TimeoutError as LmntTimeoutError

__all__ = ["RestClient", "FileSpec"]

API_VERSION = spec.API_VERSION
RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504)
# A file to upload: a path, or (filename, bytes or binary file object).
FileSpec = Union[str, "os.PathLike[str]", Tuple[str, Union[bytes, BinaryIO]]]


class RestClient:
    """Blocking REST calls; thread-safe for concurrent calls (requests pools connections).

    Args:
        base_url: e.g. ``https://api.lmnt.com``.
        api_key: sent as ``X-API-Key``; never logged or shown.
        timeout: read timeout per attempt, seconds.
        connect_timeout: TCP/TLS connect timeout per attempt, seconds.
        max_retries: retries after the first attempt.
        verify: True, False, or a CA bundle path (TLS verification).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        verify: Union[bool, str] = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, timeout)
        # Passed on every request, not set on the session: requests lets
        # REQUESTS_CA_BUNDLE override a session-level verify (psf/requests#3829).
        self._verify = verify
        self._session = requests.Session()
        self._session.headers.update(
            {
                "X-API-Key": api_key,
                "lmnt-version": API_VERSION,
                "User-Agent": f"lmnt-sync/{__version__}",
            }
        )
        retry = Retry(
            total=max_retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # the official SDK retries POST too
            backoff_factor=0.5,
            backoff_max=8.0,
            backoff_jitter=0.25,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=20)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def __repr__(self) -> str:
        return f"<RestClient {self.base_url}>"

    def close(self) -> None:
        """Release pooled connections; idempotent."""
        self._session.close()

    # -- speech -----------------------------------------------------------

    def synthesize(self, text: str, voice: str, **options: Any) -> bytes:
        """Synthesize ``text`` and return the audio file's bytes (POST /v1/ai/speech/bytes).

        Blocks until the whole file has arrived (retries included).
        ``options``: format, sample_rate, language, model, temperature, top_p.
        """
        body = _speech_body(text, voice, options)
        headers = {"Accept": "application/octet-stream"}
        response = self._request("POST", "/v1/ai/speech/bytes", json=body, headers=headers)
        return response.content

    def synthesize_detailed(
        self, text: str, voice: str, *, return_timestamps: bool = True, **options: Any
    ) -> Dict[str, Any]:
        """Synthesize and return ``{"audio": bytes, "timestamps": [...]}`` (POST /v1/ai/speech)."""
        body = _speech_body(text, voice, options)
        body["return_timestamps"] = bool(return_timestamps)
        result = _json_object(self._request("POST", "/v1/ai/speech", json=body))
        result["audio"] = base64.b64decode(result.get("audio", ""))
        return result

    # -- voices and account ----------------------------------------------

    def list_voices(self, *, owner: str = "all", starred: Optional[bool] = None) -> List[Dict[str, Any]]:
        """Return the voices (owner: "system", "me" or "all")."""
        if owner not in ("system", "me", "all"):
            raise ConfigurationError(f"owner must be 'system', 'me' or 'all', not {owner!r}")
        params: Dict[str, str] = {"owner": owner}
        if starred is not None:
            params["starred"] = "true" if starred else "false"
        voices = _json(self._request("GET", "/v1/ai/voice/list", params=params))
        if not isinstance(voices, list) or not all(isinstance(voice, dict) for voice in voices):
            raise ProtocolError(f"GET /v1/ai/voice/list answered {_shape(voices)}, not a list of voice objects")
        return voices

    def voice_info(self, voice_id: str) -> Dict[str, Any]:
        """Return one voice."""
        return _json_object(self._request("GET", f"/v1/ai/voice/{_voice_path(voice_id)}"))

    def create_voice(
        self,
        name: str,
        files: Union[FileSpec, Sequence[FileSpec]],
        *,
        description: Optional[str] = None,
        gender: Optional[str] = None,
        tags: Optional[Iterable[str]] = None,
        enhance: Optional[bool] = None,
    ) -> Dict[str, Any]:
        """Create a voice from one or more audio files (multipart upload); return it."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name must be a non-empty string")
        fields: List[Tuple[str, Any]] = [("name", (None, name))]
        for key, value in (("description", description), ("gender", gender)):
            if value is not None:
                fields.append((key, (None, value)))
        if enhance is not None:
            fields.append(("enhance", (None, "true" if enhance else "false")))
        fields.extend(("tags[]", (None, tag)) for tag in (tags or ()))
        uploads, opened = _open_files(files)
        part = "file" if len(uploads) == 1 else "files[]"
        try:
            fields.extend((part, upload) for upload in uploads)
            return _json_object(self._request("POST", "/v1/ai/voice", files=fields))
        finally:
            for handle in opened:
                handle.close()

    def update_voice(self, voice_id: str, **changes: Any) -> Dict[str, Any]:
        """Change a voice's name, description, gender, starred or tags; return the voice."""
        allowed = {"name", "description", "gender", "starred", "tags"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ConfigurationError(f"update_voice got unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        body = {key: value for key, value in changes.items() if value is not None}
        result = _json_object(self._request("PUT", f"/v1/ai/voice/{_voice_path(voice_id)}", json=body))
        voice = result.get("voice", result)
        return voice if isinstance(voice, dict) else result

    def delete_voice(self, voice_id: str) -> Dict[str, Any]:
        """Delete a voice you own; return the server's confirmation."""
        return _json_object(self._request("DELETE", f"/v1/ai/voice/{_voice_path(voice_id)}"))

    def account_info(self) -> Dict[str, Any]:
        """Return the account's plan and usage."""
        return _json_object(self._request("GET", "/v1/account"))

    # -- plumbing ---------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request (retried per policy); blocks up to the timeouts per attempt."""
        try:
            response = self._session.request(
                method, self.base_url + path, timeout=self.timeout, verify=self._verify, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise APIConnectionError(
                f"{method} {path}: TLS certificate verification failed; "
                "pass verify=<CA bundle path> to trust a private CA"
            ) from exc
        except requests.Timeout as exc:
            connect, read = self.timeout
            raise LmntTimeoutError(f"{method} {path} timed out (connect {connect:g} s, read {read:g} s)") from exc
        except requests.RequestException as exc:
            raise APIConnectionError(f"{method} {self.base_url}{path} failed: {_root_cause(exc)}") from exc
        if response.status_code < 400:
            return response
        error = _status_error(response, method, path)
        # Raised with no frame holding the response: a caller keeping the
        # error (and its traceback) must not keep the socket open.
        del response
        raise error


def _json(response: requests.Response) -> Any:
    """The response's JSON body.

    Raises:
        ProtocolError: the body is not JSON (names the request and the start of the body).
    """
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise ProtocolError(
            f"{request.method} {request.path_url} answered {response.status_code} with a body that is not JSON: "
            f"{response.text[:120]!r}"
        ) from None


def _json_object(response: requests.Response) -> Dict[str, Any]:
    """The response's JSON body, which must be an object.

    Raises:
        ProtocolError: the body is not a JSON object.
    """
    body = _json(response)
    if not isinstance(body, dict):
        request = response.request
        raise ProtocolError(f"{request.method} {request.path_url} answered {_shape(body)}, not a JSON object")
    return body


def _shape(value: Any) -> str:
    """A few words on what a JSON value is, for an error message."""
    return f"a JSON {type(value).__name__} ({json.dumps(value)[:80]})"


def _root_cause(exc: BaseException) -> str:
    """Return the innermost OS-level reason of a requests error, e.g. ``Connection refused``.

    requests wraps urllib3's MaxRetryError, which wraps the socket's OSError
    (as ``reason``, in ``args`` or as the cause); their own messages repeat
    the URL several times and end in an object repr, so only the leaf is told.
    """
    seen = set()
    todo = [exc]
    best = type(exc).__name__
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__,
                  *getattr(current, "args", ())]
        todo.extend(item for item in linked if isinstance(item, BaseException))
    return best


def _status_error(response: requests.Response, method: str, path: str) -> Exception:
    """Return the typed error for a non-2xx response (the one place that reads error bodies)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    kind, message = _error_fields(body)
    cls = status_error_class(response.status_code)
    return cls(
        message or f"{method} {path} failed",
        status_code=response.status_code,
        body=body,
        type=kind,
        request_id=response.headers.get("request-id"),
    )


def _error_fields(body: Any) -> Tuple[Optional[str], Optional[str]]:
    """Read (type, message) from any of LMNT's error body shapes."""
    if not isinstance(body, dict):
        return None, body if isinstance(body, str) and body else None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("type"), error.get("message")
    if isinstance(error, str):
        return None, error
    if isinstance(body.get("message"), str):
        return None, body["message"]
    if "detail" in body:
        return None, json.dumps(body["detail"])[:500]
    return None, None


def _speech_body(text: str, voice: str, options: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(text, str) or not text:
        raise ConfigurationError("text must be a non-empty string")
    if not isinstance(voice, str) or not voice:
        raise ConfigurationError("voice must be a non-empty string")
    allowed = {"format", "sample_rate", "language", "model", "temperature", "top_p", "debug"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown speech option(s) {unknown}; allowed: {sorted(allowed)}")
    body: Dict[str, Any] = {"text": text, "voice": voice}
    body.update({key: value for key, value in options.items() if value is not None})
    return body


def _voice_path(voice_id: str) -> str:
    if not isinstance(voice_id, str) or not voice_id or "/" in voice_id:
        raise ConfigurationError(f"voice_id must be a non-empty string without '/', not {voice_id!r}")
    return urllib.parse.quote(voice_id, safe="")


def _open_files(files: Union[FileSpec, Sequence[FileSpec]]) -> Tuple[List[Tuple[str, Any]], List[BinaryIO]]:
    """Turn paths and (name, data) pairs into requests' file tuples.

    Returns:
        The (filename, data) tuples, and the files opened here (to close).
    """
    specs = [files] if isinstance(files, (str, os.PathLike, tuple)) else list(files)
    if not specs:
        raise ConfigurationError("create_voice needs at least one audio file")
    for item in specs:
        if isinstance(item, (str, os.PathLike)) and not os.path.isfile(item):
            raise ConfigurationError(f"audio file not found: {os.fspath(item)}")
        if not isinstance(item, (str, os.PathLike)) and not (isinstance(item, tuple) and len(item) == 2):
            raise ConfigurationError(f"a file must be a path or a (filename, data) pair, not {item!r}")
    uploads: List[Tuple[str, Any]] = []
    opened: List[BinaryIO] = []
    for item in specs:
        if isinstance(item, tuple):
            uploads.append((str(item[0]), item[1]))
        else:
            handle = open(item, "rb")  # noqa: SIM115 - open until the upload is sent; the caller closes it
            opened.append(handle)
            uploads.append((os.path.basename(os.fspath(item)), handle))
    return uploads, opened
