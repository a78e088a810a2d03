"""Shared fixtures: the real local server over loopback, and leak checks.

Every client test talks to ``lmnt_sync.server.LocalServer`` over real
sockets. The synthetic engine (instant audio, exact word timings) serves
tests where what the speech says does not matter; tests that check the
words spoken use the real default engine.
"""
import os
import signal
import threading
import time

import pytest

from lmnt_sync import Speech

# Defined once, here: a session fixture imported into several test modules is a
# separate fixture in each, and each started its own PulseAudio daemon.
from playkit import audio_out, pulse_sink  # noqa: E402,F401 - fixtures

# One time unit for threaded tests; raise LMNT_SYNC_TEST_MS on a slow machine.
MS = float(os.environ.get("LMNT_SYNC_TEST_MS", "1")) / 1000.0


def our_threads(prefix="lmnt-sync"):
    """Return live threads started by lmnt_sync (their names start with ``prefix``)."""
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def socket_inodes():
    """Return the inodes of this process's open sockets."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


def describe_socket(inode):
    """Return the /proc/net line of a socket inode (which endpoint leaked), or the inode."""
    number = inode[len("socket:["):-1]
    for table in ("tcp", "tcp6", "unix", "udp", "udp6"):
        with open(f"/proc/net/{table}") as lines:
            for line in lines:
                if number in line.split():
                    return f"{table}: {line.strip()}"
    return inode


def wait_until(predicate, timeout=5.0):
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)
    return predicate()


def sigint_by_default():
    """``preexec_fn`` for a child that must take Ctrl-C (SIGINT) like one started in a terminal.

    A process started in the background by a non-interactive shell inherits
    SIGINT ignored, exec keeps it ignored, and Python then installs no
    KeyboardInterrupt handler: a test of Ctrl-C must not depend on how the
    suite itself was launched.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_raises():
    """During the test, SIGINT raises KeyboardInterrupt in this process (see ``sigint_by_default``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite():
    """After the whole suite (servers stopped), no thread or socket of ours is left."""
    before = socket_inodes()
    yield
    assert wait_until(lambda: not our_threads()), f"threads left: {our_threads()}"
    if not wait_until(lambda: socket_inodes() <= before):
        pytest.fail(f"sockets left: {[describe_socket(s) for s in socket_inodes() - before]}")


@pytest.fixture(autouse=True)
def no_receiver_left():
    """After each test, every session's receiver thread has ended."""
    yield
    assert wait_until(lambda: not our_threads("lmnt-sync-receiver")), "a session was left open"


@pytest.fixture(scope="session")
def server(no_leaks_after_suite):
    """A local server with the synthetic engine, recording client frames."""
    from lmnt_sync.server import LocalServer

    with LocalServer(engine="synthetic", record_frames=True) as srv:
        yield srv


@pytest.fixture(scope="session")
def speaking_server(no_leaks_after_suite):
    """A local server with the real default engine (speech that says the text)."""
    from lmnt_sync.server import LocalServer

    with LocalServer() as srv:
        yield srv


@pytest.fixture
def speech(server):
    """A Speech client bound to the synthetic server; closed after the test."""
    with Speech(api_key=server.api_key, base_url=server.url) as client:
        yield client


@pytest.fixture
def proxy(server):
    """A fault-injecting proxy (tests/faultproxy.py) in front of the shared local server."""
    from faultproxy import FaultProxy

    p = FaultProxy(server.port)
    yield p
    p.close()


@pytest.fixture
def via_proxy(server, proxy):
    """A Speech client whose traffic goes through the proxy."""
    with Speech(api_key=server.api_key, base_url=proxy.url) as client:
        yield client
