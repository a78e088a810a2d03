"""LocalServer's lifecycle and the ``python -m lmnt_sync.server`` command line."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import sigint_by_default
from lmnt_sync.server import LocalServer, main
from server_kit import close, connect, current_init, read, send


@pytest.fixture
def server_threads():
    """Return a function listing server threads started during this test and still alive.

    Other servers (session fixtures) may be running, so only new threads count.
    """
    before = set(threading.enumerate())
    return lambda: [t for t in threading.enumerate()
                    if t.name.startswith("lmnt-sync-s") and t not in before]


def test_start_binds_a_free_port_and_stop_leaves_nothing(server_threads):
    """port=0 binds a free port; stop() is idempotent, joins every thread, removes the temp dir."""
    server = LocalServer(engine="synthetic").start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.engine_name == "synthetic" and server.data_dir.is_dir()
        status = requests.get(server.url + "/v1/account", headers={"X-API-Key": server.api_key}).status_code
        assert status == 200 and server_threads()
    finally:
        data_dir = server.data_dir
        server.stop()
        server.stop()
    assert not server_threads() and not data_dir.exists()


def test_each_server_gets_its_own_random_key_unless_one_is_given():
    """api_key=None generates a fresh key; a given key is the only one accepted."""
    with LocalServer(engine="synthetic") as a, LocalServer(engine="synthetic", api_key="given-key") as b:
        assert a.api_key != b.api_key and b.api_key == "given-key"
        assert requests.get(b.url + "/v1/account", headers={"X-API-Key": a.api_key}).status_code == 401
        assert requests.get(b.url + "/v1/account", headers={"X-API-Key": "given-key"}).status_code == 200


def test_accept_any_key_still_needs_a_key():
    """accept_any_key accepts any non-empty key but not a missing one."""
    with LocalServer(engine="synthetic", accept_any_key=True) as server:
        assert requests.get(server.url + "/v1/account", headers={"X-API-Key": "anything"}).status_code == 200
        assert requests.get(server.url + "/v1/account").status_code == 401


def test_stop_closes_open_sessions_promptly(server_threads):
    """stop() with a session open closes it (1001) and returns within its bound."""
    server = LocalServer(engine="synthetic").start()
    ws = connect(server, current_init(server))
    read(ws, until="ready")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 10
    assert read(ws).close_code == 1001
    close(ws)
    assert not server_threads()


def test_client_frames_records_each_session_with_the_key_redacted():
    """record_frames keeps every decoded client message per session, key value redacted."""
    with LocalServer(engine="synthetic", record_frames=True) as server:
        for text in ("one.", "two."):
            ws = connect(server, current_init(server))
            send(ws, {"type": "text", "text": text}, {"type": "finish"})
            read(ws)
            close(ws)
        frames = server.client_frames()
    assert [session[1]["text"] for session in frames] == ["one.", "two."]
    assert all(session[0]["X-API-Key"] == "<redacted>" for session in frames)
    assert server.api_key not in json.dumps(frames)
    with LocalServer(engine="synthetic") as quiet:
        assert quiet.client_frames() == []


def test_start_reports_a_busy_port(server_threads):
    """Starting on a port already in use raises OSError and leaves no thread."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            LocalServer(engine="synthetic", port=taken.getsockname()[1]).start()
    assert not server_threads()


def test_main_returns_1_when_it_cannot_start(capsys, tmp_path):
    """main() reports a start failure on stderr and returns 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["--engine", "synthetic", "--port", port, "--data-dir", str(tmp_path)]) == 1
    assert "cannot start" in capsys.readouterr().err


def _start_cli(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("LMNT_SERVER_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "lmnt_sync.server", "--port", "0", "--engine", "synthetic",
         "--data-dir", str(tmp_path), *args],
        stderr=subprocess.PIPE, text=True, env=env, preexec_fn=sigint_by_default)
    lines = [process.stderr.readline() for _ in range(1 if "--api-key" in args else 2)]
    url = lines[0].split("listening on ")[1].split()[0]
    return process, url, lines


def test_cli_without_a_key_accepts_any_and_says_so(tmp_path):
    """python -m lmnt_sync.server: listens, warns that any key works, stops cleanly on SIGTERM."""
    process, url, lines = _start_cli(tmp_path)
    try:
        assert "any non-empty key is accepted" in lines[1]
        assert requests.get(url + "/v1/account", headers={"X-API-Key": "whatever"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        process.stderr.close()


def test_cli_with_a_key_requires_it_and_never_prints_it(tmp_path):
    """With --api-key only that key works and it appears nowhere in the output."""
    process, url, lines = _start_cli(tmp_path, "--api-key", "cli-secret-key")
    try:
        assert requests.get(url + "/v1/account", headers={"X-API-Key": "other"}).status_code == 401
        assert requests.get(url + "/v1/account", headers={"X-API-Key": "cli-secret-key"}).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        rest = process.stderr.read()
        process.stderr.close()
    assert "cli-secret-key" not in "".join(lines) + rest
