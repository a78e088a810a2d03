"""Replicas behind a load balancer, sharing one PostgreSQL voice store (issue 13).

Everything real, on loopback: a throwaway PostgreSQL cluster (Debian's
``postgresql``) and nginx (Debian's ``nginx``) started for this module,
and two server processes (``python -m lmnt_sync.server --store-url``).
"""
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
import websocket

from server_kit import WS_PATH, close, decode, read, send, synthetic_seconds
from service_kit import Nginx, ServerProcess, free_port


def _pg_bin(name):
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    assert found, f"{name} not found: tests/bootstrap.sh installs Debian's postgresql"
    return found


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL cluster on 127.0.0.1; yields its URL; removed afterwards."""
    # Not under pytest's root-only temp folder: the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="lmnt-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        yield from _run_postgres(as_user, folder, data, port)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_postgres(as_user, folder, data, port):
    subprocess.run(as_user + [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                              "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    ctl = as_user + [_pg_bin("pg_ctl"), "-D", str(data)]
    subprocess.run(ctl + ["-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "-l", str(folder / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(ctl + ["-m", "fast", "-w", "stop"], capture_output=True)


@pytest.fixture(scope="module")
def replicas(postgres, tmp_path_factory):
    """Two server processes sharing the PostgreSQL store (each its own data folder)."""
    servers = []
    try:
        for _ in range(2):
            servers.append(ServerProcess(["--engine", "synthetic", "--api-key", "k", "--store-url", postgres,
                                          "--data-dir", str(tmp_path_factory.mktemp("replica"))]))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def nginx(replicas, tmp_path_factory):
    """nginx on loopback, round-robin over the replicas, websockets proxied; yields its URL."""
    with Nginx(tmp_path_factory.mktemp("nginx"), [s.port for s in replicas]) as proxy:
        yield proxy.url


def _established(port):
    """Return how many established TCP connections have local port ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                count += int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01"
    return count


def test_replicas_behind_nginx_share_voices_and_sessions_spread(nginx, replicas):
    """A voice created through nginx is known to both replicas; sessions go to both and speak it."""
    created = requests.post(nginx + "/v1/ai/voice", headers={"X-API-Key": "k"}, timeout=60,
                            files=[("name", (None, "Everywhere")), ("file", ("a.wav", b"RIFF", "audio/wav"))])
    assert created.status_code == 200, created.text
    voice = created.json()["id"]
    for server in replicas:  # straight to each replica: the shared store knows it
        info = requests.get(f"{server.url}/v1/ai/voice/{voice}", headers={"X-API-Key": "k"}, timeout=60)
        assert info.status_code == 200 and info.json()["name"] == "Everywhere"
    init = {"X-API-Key": "k", "lmnt-version": "1.2", "voice": voice, "format": "pcm_s16le",
            "return_timestamps": True}
    sessions = []
    try:
        for _ in range(2):  # round robin: one session on each replica
            ws = websocket.create_connection(nginx.replace("http", "ws") + WS_PATH, timeout=60)
            sessions.append(ws)
            send(ws, init)
            assert read(ws, until="ready").kinds() == ["ready"]
        assert all(_established(server.port) >= 1 for server in replicas)
        text = "Spoken by a replica."
        for ws in sessions:
            send(ws, {"type": "text", "text": text}, {"type": "finish"})
            transcript = read(ws)
            assert transcript.close_code == 1000 and transcript.words() == text.split()
            _, seconds, _ = decode(transcript.audio, "pcm_s16le", 24000)
            assert seconds == pytest.approx(synthetic_seconds(text), abs=0.05)
    finally:
        for ws in sessions:
            close(ws)
    assert requests.delete(f"{nginx}/v1/ai/voice/{voice}", headers={"X-API-Key": "k"}, timeout=60).status_code == 200
    for server in replicas:
        assert requests.get(f"{server.url}/v1/ai/voice/{voice}", headers={"X-API-Key": "k"},
                            timeout=60).status_code == 404
