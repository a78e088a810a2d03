"""The server as a separate process, as a service runs it (``python -m lmnt_sync.server``).

:class:`ServerProcess` starts it on a free port, reads its stderr in a
thread (so a chatty server never blocks on a full pipe) and stops it with
SIGTERM (SIGKILL if it does not stop), joining everything it started.
"""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on (\S+)")


class ServerProcess:
    """``python -m lmnt_sync.server --port 0 *args`` until :meth:`stop`.

    Args:
        args: extra command-line arguments.
        max_files: the child's RLIMIT_NOFILE (None: inherited).
        timeout: seconds to wait for "listening on".
    """

    def __init__(self, args: Sequence[str] = (), *, max_files: Optional[int] = None,
                 timeout: float = 120.0, env: Optional[dict] = None) -> None:
        self.lines: List[str] = []
        self._changed = threading.Condition()
        command = [sys.executable, "-m", "lmnt_sync.server", "--port", "0", *args]
        child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))) if max_files else None
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=child_env, preexec_fn=limit)
        self._reader = threading.Thread(target=self._read, name="server-process-stderr", daemon=True)
        self._reader.start()
        found = self.wait_for(_LISTENING, timeout)
        if found is None:
            self.stop()
            raise RuntimeError("server process did not start:\n" + "".join(self.lines))
        self.url = found.group(1)

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: "re.Pattern[str]", timeout: float) -> Optional["re.Match[str]"]:
        """Return the first stderr line matching ``pattern`` (None: not within ``timeout`` s)."""
        def found():
            return next((m for m in map(pattern.search, self.lines) if m), None)

        with self._changed:
            self._changed.wait_for(lambda: found() or not self._reader.is_alive(), timeout)
            return found()

    def wait_for_count(self, text: str, count: int, timeout: float) -> bool:
        """Return True once ``count`` stderr lines contain ``text`` (False after ``timeout`` s)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(text in line for line in self.lines) >= count or not self._reader.is_alive(),
                timeout) and sum(text in line for line in self.lines) >= count

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        """Stop the process (SIGTERM, then SIGKILL after 20 s); return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serving_pid(server: ServerProcess, client) -> Optional[int]:
    """Return the pid of the server worker holding ``client``'s connection (a socket).

    Reads /proc: the connection's inode from /proc/net/tcp, then which child
    of the server process has that socket open.
    """
    local_port = client.getsockname()[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if (int(fields[1].rsplit(":", 1)[1], 16) == server.port
                        and int(fields[2].rsplit(":", 1)[1], 16) == local_port):
                    inode = fields[9]
    if inode is None:
        return None
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as children:
        for pid in map(int, children.read().split()):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
    return None


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Nginx:
    """nginx (Debian's package) on 127.0.0.1, round-robin over ``ports``, websockets proxied.

    Its config, temp files and logs live in ``folder``; :meth:`stop` ends it.
    """

    def __init__(self, folder: Path, ports: Sequence[int], timeout: float = 60.0) -> None:
        port = free_port()
        upstreams = "".join(f"server 127.0.0.1:{p}; " for p in ports)
        temp = " ".join(f"{kind}_temp_path {folder}/{kind};"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(f"""
            {"user root;" if os.geteuid() == 0 else ""}
            worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;
            events {{ worker_connections 4096; }}
            http {{
              access_log off; {temp}
              map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
              upstream lmnt {{ {upstreams} }}
              server {{
                listen 127.0.0.1:{port}; client_max_body_size 300m;
                location / {{
                  proxy_pass http://lmnt; proxy_http_version 1.1; proxy_buffering off;
                  proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
                  proxy_read_timeout 3600s;
                }}
              }}
            }}""")
        self.proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(folder / "nginx.conf"),
                                      "-p", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not _accepts(port):  # polls the condition: nginx listening, or dead
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not start: " + (folder / "error.log").read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)

    def __enter__(self) -> "Nginx":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
