"""Where created voices are kept: a real database behind one small interface.

Every change is one transaction (all or nothing), and every read asks the
database, so several server processes -- ``serve --workers N``, or replicas
on several machines -- share one set of voices:

* :class:`SqliteVoiceDB` (the default): ``<data_dir>/voices.sqlite3`` in WAL
  mode, safe for processes on one machine (readers never wait for a writer).
* :class:`PostgresVoiceDB`: a PostgreSQL URL (``postgresql://...``), for
  replicas on several machines; needs ``psycopg``.

:func:`open_voice_db` picks one. Methods block (file or network I/O);
they are thread-safe. A record is the voice's JSON object as the store
keeps it (see :mod:`.voices`).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Set

__all__ = ["VoiceDB", "SqliteVoiceDB", "PostgresVoiceDB", "open_voice_db", "StoreError"]

Record = Dict[str, Any]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS lmnt_voices (id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, "
    "record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lmnt_starred (id TEXT PRIMARY KEY)",
)


class StoreError(Exception):
    """The database refused or failed a change (nothing was changed)."""


class VoiceDB:
    """Created voices and starred ids in a DB-API database (SQL shared by both engines).

    Subclasses provide :meth:`_connect`, :attr:`_PARAM` (the placeholder)
    and the driver's error class :attr:`_ERROR`.
    """

    _PARAM = "?"
    _ERROR: Any = Exception

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._conn = self._connect()
        with self._transaction(write=True) as cur:
            for statement in _SCHEMA:
                cur.execute(statement)

    def _connect(self) -> Any:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text.replace("?", self._PARAM)

    def _transaction(self, write: bool = False) -> _Transaction:
        return _Transaction(self, write)

    def _begin(self, write: bool) -> None:
        raise NotImplementedError

    # -- reads ---------------------------------------------------------------

    def records(self) -> Dict[str, Record]:
        """Return every created voice by id, oldest first."""
        with self._transaction() as cur:
            cur.execute("SELECT record FROM lmnt_voices ORDER BY created, id")
            rows = cur.fetchall()
        return {r["id"]: r for r in (json.loads(row[0]) for row in rows)}

    def record(self, voice_id: str) -> Optional[Record]:
        """Return one created voice, or None."""
        try:
            voice_id.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from JSON: no stored id is like that
            return None
        with self._transaction() as cur:
            cur.execute(self._sql("SELECT record FROM lmnt_voices WHERE id = ?"), (voice_id,))
            row = cur.fetchone()
        return json.loads(row[0]) if row else None

    def count(self) -> int:
        """Return how many voices were created."""
        with self._transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM lmnt_voices")
            return int(cur.fetchone()[0])

    def starred(self) -> Set[str]:
        """Return the starred voice ids (created or system)."""
        with self._transaction() as cur:
            cur.execute("SELECT id FROM lmnt_starred")
            return {row[0] for row in cur.fetchall()}

    # -- changes (each one transaction) ---------------------------------------

    def put(self, record: Record, starred: Optional[bool] = None) -> None:
        """Insert or replace ``record``; star or unstar it if ``starred`` is given."""
        with self._transaction(write=True) as cur:
            self._put(cur, record)
            if starred is not None:
                self._star(cur, record["id"], starred)

    def star(self, voice_id: str, starred: bool) -> None:
        """Star or unstar any voice id."""
        with self._transaction(write=True) as cur:
            self._star(cur, voice_id, starred)

    def delete(self, voice_id: str) -> None:
        """Remove a created voice and its star."""
        with self._transaction(write=True) as cur:
            cur.execute(self._sql("DELETE FROM lmnt_voices WHERE id = ?"), (voice_id,))
            cur.execute(self._sql("DELETE FROM lmnt_starred WHERE id = ?"), (voice_id,))

    def import_all(self, records: list[Record], starred: list[str]) -> None:
        """Add ``records`` and stars (an older store's content) in one transaction."""
        with self._transaction(write=True) as cur:
            for record in records:
                self._put(cur, record)
            for voice_id in starred:
                self._star(cur, voice_id, True)

    def _put(self, cur: Any, record: Record) -> None:
        cur.execute(self._sql("DELETE FROM lmnt_voices WHERE id = ?"), (record["id"],))
        cur.execute(self._sql("INSERT INTO lmnt_voices (id, created, record) VALUES (?, ?, ?)"),
                    (record["id"], float(record.get("created_at") or time.time()), json.dumps(record)))

    def _star(self, cur: Any, voice_id: str, starred: bool) -> None:
        cur.execute(self._sql("DELETE FROM lmnt_starred WHERE id = ?"), (voice_id,))
        if starred:
            cur.execute(self._sql("INSERT INTO lmnt_starred (id) VALUES (?)"), (voice_id,))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()


class _Transaction:
    """``with`` block: one transaction on the DB's connection, under its lock.

    Commits on success; rolls back and raises :class:`StoreError` on a
    database error.
    """

    def __init__(self, db: VoiceDB, write: bool) -> None:
        self._db = db
        self._write = write

    def __enter__(self) -> Any:
        self._db._lock.acquire()
        try:
            self._db._begin(self._write)
            self._cur = self._db._conn.cursor()
        except self._db._ERROR as exc:
            self._db._lock.release()
            raise StoreError(f"voice store: {exc}") from exc
        except BaseException:
            self._db._lock.release()
            raise
        return self._cur

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        conn = self._db._conn
        try:
            if exc_type is None:
                try:
                    conn.commit()
                    return
                except self._db._ERROR as err:
                    exc = err
            conn.rollback()
            if isinstance(exc, self._db._ERROR):
                raise StoreError(f"voice store: {exc}") from exc
        finally:
            self._cur.close()
            self._db._lock.release()


class SqliteVoiceDB(VoiceDB):
    """Voices in an SQLite file (WAL), shared by processes on one machine.

    Args:
        path: the database file (created).
        timeout: seconds a change waits for another process's write lock.
    """

    _ERROR = sqlite3.Error

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self._path = Path(path)
        self._timeout = timeout
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None,
                               check_same_thread=False)  # our lock serialises its use
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a committed voice survives a power cut
        return conn

    def _begin(self, write: bool) -> None:
        # IMMEDIATE: a change takes the write lock first, so it never fails
        # half way; reads (WAL) never wait for a writer.
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class PostgresVoiceDB(VoiceDB):
    """Voices in PostgreSQL, shared by replicas on several machines.

    Args:
        url: ``postgresql://user@host:port/dbname`` (libpq syntax).
        timeout: seconds to connect.

    Raises:
        ImportError: psycopg is not installed.
    """

    _PARAM = "%s"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        import psycopg

        self._psycopg = psycopg
        self._ERROR = psycopg.Error
        self._url = url
        self._timeout = timeout
        super().__init__()

    def _connect(self) -> Any:
        return self._psycopg.connect(self._url, connect_timeout=int(max(1, self._timeout)))

    def _begin(self, write: bool) -> None:
        pass  # psycopg opens a transaction with the first statement


def open_voice_db(data_dir: Path, url: Optional[str] = None, timeout: float = 5.0) -> VoiceDB:
    """Return the store's database: PostgreSQL for a ``postgresql://`` URL, else SQLite.

    Raises:
        ValueError: a URL of another kind.
        StoreError: the database cannot be opened.
    """
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"voice store URL must be postgresql://..., not {url.split(':', 1)[0]}:...")
        try:
            return PostgresVoiceDB(url, timeout)
        except ImportError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open the voice store: {type(exc).__name__}") from None
    try:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        return SqliteVoiceDB(Path(data_dir) / "voices.sqlite3", timeout)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open the voice store in {data_dir}: {exc}") from exc
