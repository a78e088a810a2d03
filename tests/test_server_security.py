"""Server security: loopback by default, constant-time keys, nothing outside the data folder, size limits.

The server runs in this process, so a Python audit hook (``sys.addaudithook``)
sees every file it opens, renames, removes or lists. Each attack runs with
the hook armed; afterwards every path touched must lie inside the server's
``data_dir``, and the files beside the data folder (a secret, a decoy
``voices.json``, files named like the attack targets) must be unchanged,
with no new file anywhere outside ``data_dir``.

Decision on hostile upload file names (``../../etc/passwd``, absolute paths,
NUL bytes, unicode look-alikes): the upload is accepted, as LMNT accepts any
client file name, because the server never uses the name on disk; only a
whitelisted suffix is kept (voices.VoiceStore.upload_path). The tests check
that each such upload lands in ``data_dir/uploads`` under a generated name.
Voice ids in the path or body of every route that takes one get a 4xx
(not_found_error) in LMNT's error shape.
"""
import hmac
import http.client
import inspect
import json
import os
import re
import sys
import threading
import types
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import websocket

from lmnt_sync.server import Limits, LocalServer, auth
from lmnt_sync.server.cli import build_parser
from server_kit import Neighbour, close, connect, current_init, read, run_session, send

UPLOAD_LIMIT = 64 * 1024
MESSAGE_LIMIT = 1024
SECRET = "top secret: the server must never read this"
_FS_EVENTS = {"open", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.listdir", "os.scandir",
              "os.chmod", "os.chown", "os.truncate", "os.link", "os.symlink", "os.utime", "shutil.rmtree"}
_watching = []  # lists receiving (event, path) while a FileWatch is armed


def _audit(event, args):
    if (_watching and event in _FS_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike))
            and threading.current_thread() is not threading.main_thread()):  # the server's threads, not the test's
        _watching[-1].append((event, os.fsdecode(args[0]), threading.current_thread().name))


sys.addaudithook(_audit)  # permanent, but idle (one list check) unless a FileWatch is armed


class FileWatch:
    """Records every path the server's threads touch while armed (a context manager)."""

    def __init__(self):
        self.touched = []

    def __enter__(self):
        _watching.append(self.touched)
        return self

    def __exit__(self, *exc):
        _watching.remove(self.touched)

    def outside(self, folder):
        """Return the touched paths that are not inside ``folder``."""
        root = Path(folder).resolve()
        return [t for t in self.touched if not Path(t[1]).resolve().is_relative_to(root)]


def snapshot(folder, skip=None):
    """Return {relative path: (kind, bytes)} of everything under ``folder`` (except ``skip``)."""
    result = {}
    for path in sorted(Path(folder).rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        result[str(path.relative_to(folder))] = ("file", path.read_bytes()) if path.is_file() else ("dir", b"")
    return result


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    """A folder holding the server's data_dir and, beside it, files an attack would want."""
    root = tmp_path_factory.mktemp("vault")
    (root / "secret.txt").write_text(SECRET)
    (root / "x").write_text(SECRET)
    (root / "voices.json").write_text(json.dumps({"version": 1, "voices": [{"id": "evil", "name": "evil"}]}))
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(SECRET)
    return root


@pytest.fixture(scope="module")
def srv(vault):
    """A synthetic server whose data_dir is vault/data, with small upload and message limits."""
    limits = Limits(max_upload_bytes=UPLOAD_LIMIT, max_message_bytes=MESSAGE_LIMIT)
    with LocalServer(engine="synthetic", data_dir=vault / "data", limits=limits) as server:
        yield server


@pytest.fixture
def guarded(srv, vault):
    """Yield a FileWatch; afterwards nothing outside data_dir was touched or changed."""
    data = vault / "data"
    before = snapshot(vault, skip=data)
    with FileWatch() as watch:
        yield watch
    assert watch.outside(data) == []
    assert snapshot(vault, skip=data) == before


HEADERS = {"lmnt-version": "1.2"}


def assert_lmnt_4xx(status, body, slug=None):
    """A 4xx whose body is LMNT's current error shape (and has ``slug`` if given)."""
    assert 400 <= status < 500, (status, body)
    error = json.loads(body)["error"]
    assert set(error) == {"type", "message"} and (slug is None or error["type"] == slug), body
    assert SECRET.encode() not in body


def raw_request(server, method, path, body=None, headers=()):
    """Send ``path`` verbatim (no client-side normalisation); return (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = {"X-API-Key": server.api_key, "Content-Type": "application/json", **HEADERS, **dict(headers)}
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# Voice ids as raw path segments: traversal, encoded traversal, absolute paths, NUL,
# backslashes, overlong UTF-8, unicode look-alikes and direction tricks.
RAW_IDS = ["../x", "..%2Fx", "..%2F..%2Fsecret.txt", "%2e%2e%2fvoices.json", "..%252Fx", "..", "%2E%2E", ".",
           "%2Fetc%2Fpasswd", "{secret}", "x%00", "lily%00.json", "%00", "..%5C..%5Cx", "%C0%AE%C0%AE%2Fx",
           "%EF%BC%8E%EF%BC%8E%EF%BC%8Fx", "%E2%80%A5%2Fx", "l%D1%96ly", "%E2%80%AElily", "lily%E2%80%8B",
           "voices.json", "uploads", "data%2Fvoices.json", "~%2F.ssh", "file:%2F%2F%2Fetc%2Fpasswd", "a/b", "lily/"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("raw_id", RAW_IDS)
def test_voice_ids_in_the_path_stay_inside(srv, vault, guarded, method, raw_id):
    """GET/PUT/DELETE /v1/ai/voice/{id}: a 4xx in LMNT's shape, and no file is touched at all."""
    raw_id = raw_id.format(secret=quote(str(vault / "secret.txt"), safe=""))
    body = json.dumps({"name": "../../escaped", "starred": True}) if method == "PUT" else None
    status, reply = raw_request(srv, method, "/v1/ai/voice/" + raw_id, body)
    assert_lmnt_4xx(status, reply, "not_found_error")
    assert guarded.touched == []


HOSTILE_VOICES = ["../x", "../../secret.txt", "/etc/passwd", "{secret}", "x\x00", "lily\x00", "\x00",
                  "..\\..\\x", "\uff0e\uff0e\uff0fx", "\u2025/x", "l\u0456ly", "\u202elily", "lily\u200b",
                  "voices.json", "uploads/../../x", "file:///etc/passwd", "~/.ssh/id_rsa", "evil"]


@pytest.mark.parametrize("voice", HOSTILE_VOICES)
def test_voice_ids_in_speech_requests_stay_inside(srv, vault, guarded, voice):
    """Speech over REST (both routes) and the websocket: not_found_error, and no file is touched."""
    voice = voice.format(secret=vault / "secret.txt")
    body = json.dumps({"text": "Hello.", "voice": voice}).encode()
    for path in ("/v1/ai/speech", "/v1/ai/speech/bytes"):
        assert_lmnt_4xx(*raw_request(srv, "POST", path, body), "not_found_error")
    transcript = run_session(srv, [current_init(srv, voice=voice), {"type": "finish"}])
    assert [m["error"]["type"] for m in transcript.messages("type", "error")] == ["not_found_error"]
    assert transcript.close_code == 1000 and SECRET not in json.dumps(transcript.events)
    assert guarded.touched == []


def multipart(parts):
    """Encode ``parts`` [(name, filename bytes or None, data)] by hand, so any filename bytes go through."""
    out = b""
    for name, filename, data in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += filename if filename.startswith(b";") else b'; filename="' + filename + b'"'
        out += b"--b\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--b--\r\n", "multipart/form-data; boundary=b"


def create_voice(server, files, name=b"attack"):
    """POST /v1/ai/voice with the given (filename, data) files; return (status, body)."""
    body, ctype = multipart([(b"name", None, name)] + [(b"file", f, d) for f, d in files])
    return raw_request(server, "POST", "/v1/ai/voice", body, {"Content-Type": ctype})


HOSTILE_FILENAMES = [b"../../etc/passwd", b"../../../../../../tmp/pwned.wav", b"{vault}/pwned.wav",
                     b"..\\..\\pwned.wav", b"pwned.wav\x00.sh", b"\x00", b"uploads/../../voices.json",
                     b"voices.json", b"../voices.tmp", "\uff0e\uff0e\uff0fpwned.wav".encode(),
                     "\u202evaw.denwp".encode(), b"", b"." * 300 + b".wav", b"/" * 5000,
                     b"; filename*=UTF-8''..%2F..%2Fpwned.wav"]


@pytest.mark.parametrize("filename", HOSTILE_FILENAMES)
def test_uploaded_file_names_never_reach_the_file_system(srv, vault, guarded, filename):
    """A hostile upload name: stored under a generated name in data_dir/uploads, nothing else written."""
    uploads = vault / "data" / "uploads"
    before = set(uploads.iterdir())
    status, reply = create_voice(srv, [(filename.replace(b"{vault}", str(vault).encode()), b"RIFF" + bytes(64))])
    if status != 200:  # a name the multipart parser itself refuses (e.g. a NUL in the header)
        assert_lmnt_4xx(status, reply, "invalid_request_error")
        assert set(uploads.iterdir()) == before
        return
    new = set(uploads.iterdir()) - before
    assert len(new) == 1 and re.fullmatch(r"[0-9a-f]{32}\.(wav|bin)", new.pop().name)
    assert not [p for p in vault.rglob("*") if "pwned" in p.name]
    status, reply = raw_request(srv, "DELETE", "/v1/ai/voice/" + json.loads(reply)["id"])
    assert status == 200 and set(uploads.iterdir()) == before
    opened = {Path(t[1]).parent for t in guarded.touched if t[0] == "open"}
    assert uploads in opened, "the watch saw no upload being written: the check would be vacuous"
    assert opened <= {uploads, vault / "data"}


def test_upload_size_limit(srv, vault, guarded):
    """Over max_upload_bytes (one file or in total): 413 in LMNT's shape, partial files removed."""
    uploads, store = vault / "data" / "uploads", vault / "data" / "voices.json"
    before, saved = set(uploads.iterdir()), store.read_bytes() if store.exists() else None
    for files in ([(b"big.wav", bytes(UPLOAD_LIMIT + 1))],
                  [(b"a.wav", bytes(UPLOAD_LIMIT // 2)), (b"b.wav", bytes(UPLOAD_LIMIT // 2 + 1))]):
        status, reply = create_voice(srv, files)
        assert status == 413
        assert_lmnt_4xx(status, reply, "invalid_request_error")
        assert str(UPLOAD_LIMIT) in json.loads(reply)["error"]["message"]
        assert set(uploads.iterdir()) == before
        assert (store.read_bytes() if store.exists() else None) == saved
    status, reply = create_voice(srv, [(b"exact.wav", bytes(UPLOAD_LIMIT))])
    assert status == 200, reply
    assert raw_request(srv, "DELETE", "/v1/ai/voice/" + json.loads(reply)["id"])[0] == 200
    assert Limits().max_upload_bytes == 250 * 1024 * 1024  # LMNT's documented limit, the default


def test_rest_body_size_limit(srv):
    """A request body over 1 MiB: 413 in LMNT's shape, and the server carries on."""
    status, reply = raw_request(srv, "POST", "/v1/ai/speech", b" " * (2 << 20))
    assert status == 413
    assert_lmnt_4xx(status, reply, "invalid_request_error")
    assert raw_request(srv, "POST", "/v1/ai/speech/bytes", b'{"text": "Fine.", "voice": "lily"}')[0] == 200


def frame_of(size):
    """Return a text message whose UTF-8 encoding is exactly ``size`` bytes (multibyte text)."""
    empty = len(json.dumps({"type": "text", "text": ""}).encode())
    text = "\u00e9" * ((size - empty) // 2) + "e" * ((size - empty) % 2)  # é: 2 bytes, 1 character
    frame = json.dumps({"type": "text", "text": text}, ensure_ascii=False)
    assert len(frame.encode()) == size and len(frame) < size
    return frame


def test_websocket_message_limit_counts_bytes(srv):
    """A message of exactly max_message_bytes is accepted; one byte more (fewer characters) is refused."""
    spoken = run_session(srv, [current_init(srv), frame_of(MESSAGE_LIMIT), {"type": "finish"}])
    assert spoken.close_code == 1000 and not spoken.messages("type", "error") and spoken.audio
    refused = run_session(srv, [current_init(srv), frame_of(MESSAGE_LIMIT + 1)])
    (error,) = refused.messages("type", "error")
    assert error["error"]["type"] == "invalid_request_error" and str(MESSAGE_LIMIT) in error["error"]["message"]
    assert refused.close_code == 1000


def test_frame_beyond_the_transport_limit_closes_1009_and_others_carry_on(srv):
    """A frame announcing more than the 8 MiB transport limit is closed with 1009 at once, unread
    (Limits.transport_message_bytes); a session open meanwhile is unaffected.

    Only the frame's start is sent: a client blocked writing all of it meets
    a reset instead, as the server discards what it did not read (documented).
    """
    neighbour = Neighbour(srv)
    neighbour.ask("Still here.")
    ws = connect(srv, current_init(srv))
    try:
        assert read(ws, until="ready").kinds() == ["ready"]
        frame = websocket.ABNF.create_frame("x" * (Limits().transport_message_bytes + 1), websocket.ABNF.OPCODE_TEXT)
        ws.sock.sendall(frame.format()[:64 * 1024])  # the header announces 8 MiB + 1 byte
        transcript = read(ws)
    finally:
        close(ws)
    assert transcript.close_code == 1009 and not transcript.messages("type", "error")
    neighbour.check("Still here.")
    neighbour.finish()


def listeners(port):
    """Return the local addresses listening on ``port`` (hex, as in /proc/net/tcp[6])."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.split(":")[-1], 16) == port:
                    found.append(local.split(":")[0])
    return found


def test_binds_loopback_by_default():
    """LocalServer and the command line default to 127.0.0.1; a default server listens there only."""
    assert inspect.signature(LocalServer).parameters["host"].default == "127.0.0.1"
    assert build_parser().parse_args([]).host == "127.0.0.1"
    with LocalServer(engine="synthetic") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert listeners(server.port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0 or ::


def test_keys_are_compared_in_constant_time(srv, monkeypatch):
    """Every key check, REST and websocket, right or wrong, any length, goes through hmac.compare_digest."""
    calls = []

    def spy(presented, expected):
        calls.append((presented, expected))
        return hmac.compare_digest(presented, expected)

    monkeypatch.setattr(auth, "hmac", types.SimpleNamespace(compare_digest=spy))
    key = srv.api_key.encode()
    for presented in (srv.api_key, "wrong", "x" * 600, srv.api_key[:-1]):  # init within MESSAGE_LIMIT
        response = requests.get(srv.url + "/v1/account", headers={"X-API-Key": presented, **HEADERS}, timeout=30)
        assert response.status_code == (200 if presented == srv.api_key else 401)
        ws = connect(srv, current_init(srv, **{"X-API-Key": presented}))
        send(ws, {"type": "finish"})
        transcript = read(ws)
        close(ws)
        assert bool(transcript.messages("type", "error")) is (presented != srv.api_key)
        assert calls[-2:] == [(presented.encode(), key)] * 2
    source = inspect.getsource(auth.Auth.check)
    assert "compare_digest" in source and not re.search(r"[!=]=\s*self\._key|self\._key\s*[!=]=", source)

