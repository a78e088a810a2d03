"""The voice store: built-in voices, LMNT's system ids, and created voices.

Three kinds of voices are listed (all answer ``GET /v1/ai/voice/list``):

* **local** voices of the server's engines (owner ``system``), e.g. ``joe``
  (piper) or ``synth`` (synthetic); each engine voice id is unique;
* **LMNT system ids** such as ``lily``, ``leah``, ``ava`` and the preset list
  of PROTOCOL.md §2.7 (owner ``system``): accepted so that code written for
  the cloud runs unchanged, each mapped to a local voice -- one of the same
  gender as the name suggests when there is one, preferring the primary
  engine; the description says which one;
* **created** voices (owner ``me``). Nothing is cloned: a created voice
  speaks with a built-in voice chosen when it is created, and its
  description says so. Uploaded audio is kept under generated file names
  in ``<data_dir>/uploads`` (client file names never touch the file system)
  and metadata in a database (:mod:`.voicedb`: SQLite in ``data_dir`` or
  PostgreSQL), so voices survive a restart and are shared by every server
  process using the same store. A ``voices.json`` of earlier versions is
  imported once (then renamed ``voices.json.imported``).

Thread-safe. Every read asks the database (another process may have
changed it); changes are one transaction each, all or nothing, so a failed
save (disk full, read-only, locked) changes nothing and raises. Uploaded
files of a deleted voice are removed only after the deletion committed.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from .apierror import ApiError
from .engines.base import LocalVoice
from .voicedb import VoiceDB, open_voice_db

__all__ = ["PRESET_VOICES", "VoiceStore", "VoiceRef", "UPLOAD_SUFFIXES"]

#: LMNT system voice ids accepted locally, with the gender their name
#: suggests (only used to pick a local voice of the same gender if any).
PRESET_VOICES: Dict[str, str] = {
    "amy": "female", "ansel": "male", "autumn": "female", "ava": "female",
    "brandon": "male", "caleb": "male", "cassian": "male", "chloe": "female",
    "dalton": "male", "daniel": "male", "dustin": "male", "elowen": "female",
    "evander": "male", "huxley": "male", "james": "male", "juniper": "female",
    "kennedy": "female", "lauren": "female", "leah": "female", "lily": "female",
    "lucas": "male", "magnus": "male", "miles": "male", "morgan": "female",
    "natalie": "female", "nathan": "male", "noah": "male", "nyssa": "female",
    "oliver": "male", "paige": "female", "ryan": "male", "sadie": "female",
    "sophie": "female", "stella": "female", "terrence": "male", "tyler": "male",
    "vesper": "female", "violet": "female", "warrick": "male", "zain": "male",
    "zeke": "male", "zoe": "female", "mara-wilson": "female",
}

#: Suffixes kept for uploaded files; anything else is stored as ``.bin``.
UPLOAD_SUFFIXES = (".wav", ".mp3", ".mp4", ".m4a", ".webm", ".ogg", ".flac", ".aac")

_UPDATABLE = ("name", "description", "gender", "starred", "tags")
_STORE_FILE = "voices.json"


class VoiceRef(NamedTuple):
    """Which engine speaks a voice, and with which of its voices."""

    engine: str
    voice: str


class VoiceStore:
    """Voices known to one server.

    Args:
        local_voices: ``(engine name, voice)`` pairs, primary engine first;
            a later duplicate voice id is ignored.
        primary: the primary engine's name (preferred for LMNT ids).
        data_dir: folder for ``uploads/`` (created) and the SQLite store.
        db: the voice database; None opens SQLite in ``data_dir``.
        max_voices: created voices it holds at most.
        max_metadata_bytes: a voice's name, description and tags in all
            (UTF-8 JSON), so the index stays small.

    Raises:
        ValueError: no voices, or a ``voices.json`` to import is corrupt
            (it is left untouched so nothing is lost).
        StoreError: the database cannot be opened.
    """

    def __init__(self, local_voices: Sequence[Tuple[str, LocalVoice]], primary: str,
                 data_dir: Path, *, db: Optional[VoiceDB] = None, max_voices: int = 10_000,
                 max_metadata_bytes: int = 64 * 1024) -> None:
        if not local_voices:
            raise ValueError(f"engine {primary!r} offers no voices")
        self._local: Dict[str, LocalVoice] = {}
        self._engine_of: Dict[str, str] = {}
        for engine, voice in local_voices:
            if voice.id not in self._local:
                self._local[voice.id] = voice
                self._engine_of[voice.id] = engine
        self._primary = primary
        self._max_voices = max_voices
        self._max_metadata = max_metadata_bytes
        # Changes run in threads (off the event loop): one at a time.
        self._write_lock = threading.Lock()
        self._dir = Path(data_dir)
        self._uploads = self._dir / "uploads"
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._db = db if db is not None else open_voice_db(self._dir)
        self._import_json()

    # -- queries -----------------------------------------------------------

    def list(self, owner: str = "all", starred: bool = False) -> List[Dict[str, Any]]:
        """Return voice objects, system voices first.

        Raises:
            ApiError: ``owner`` is not system, me or all.
        """
        if owner not in ("all", "system", "me"):
            raise ApiError("invalid_request_error", f"owner must be system, me or all, not {owner[:40]!r}")
        ids = self._system_ids() if owner in ("all", "system") else []
        stars = self._db.starred()
        voices = [self._system_object(i, stars) for i in ids]
        if owner in ("all", "me"):
            voices += [self._created_object(r, stars) for r in self._db.records().values()]
        return [v for v in voices if v["starred"]] if starred else voices

    def get(self, voice_id: str) -> Dict[str, Any]:
        """Return the voice object for ``voice_id``.

        Raises:
            ApiError: not_found_error for an unknown id.
        """
        if voice_id in self._local or voice_id in PRESET_VOICES:
            return self._system_object(voice_id, self._db.starred())
        record = self._db.record(voice_id)
        if record is None:
            raise self._unknown(voice_id)
        return self._created_object(record, self._db.starred())

    def _system_object(self, voice_id: str, stars: Set[str]) -> Dict[str, Any]:
        if voice_id in self._local:
            return self._local_object(self._local[voice_id], stars)
        return self._preset_object(voice_id, stars)

    def resolve(self, voice_id: str) -> VoiceRef:
        """Return the engine and engine voice that speak for ``voice_id``.

        Raises:
            ApiError: not_found_error for an unknown id.
        """
        return self._ref(self._local_id(voice_id))

    def _local_id(self, voice_id: str) -> str:
        if voice_id in self._local:
            return voice_id
        if voice_id in PRESET_VOICES:
            return self._pick_local(PRESET_VOICES[voice_id], voice_id)
        record = self._db.record(voice_id)
        if record is None:
            raise self._unknown(voice_id)
        base = record.get("base_voice")
        # The engines may have changed since the voice was created.
        return base if base in self._local else self._pick_local(record.get("gender"), voice_id)

    def _ref(self, local_id: str) -> VoiceRef:
        return VoiceRef(self._engine_of[local_id], local_id)

    # -- changes -----------------------------------------------------------

    def upload_path(self, filename: Optional[str]) -> Path:
        """Return a fresh path in the uploads folder for a client's file.

        Only the (whitelisted) suffix of ``filename`` is kept, so a hostile
        name can never leave the folder.
        """
        suffix = Path(filename or "").suffix.lower()
        suffix = suffix if suffix in UPLOAD_SUFFIXES else ".bin"
        return self._uploads / (uuid.uuid4().hex + suffix)

    def create(self, name: str, files: Sequence[Path], *, description: Optional[str] = None,
               gender: Optional[str] = None, tags: Sequence[str] = ()) -> Dict[str, Any]:
        """Create and persist a voice owned by ``me``; return its object.

        Args:
            name: display name (non-empty).
            files: uploaded files already saved via :meth:`upload_path`.

        Raises:
            ApiError: invalid_request_error for an empty name or no files.
        """
        if not name or not name.strip():
            raise ApiError("invalid_request_error", "a voice needs a non-empty 'name'")
        if not files:
            raise ApiError("invalid_request_error", "a voice needs at least one audio file")
        with self._write_lock:
            return self._create(name, files, description, gender, tags)

    def _create(self, name: str, files: Sequence[Path], description: Optional[str],
                gender: Optional[str], tags: Sequence[str]) -> Dict[str, Any]:
        if self._db.count() >= self._max_voices:
            raise ApiError("invalid_request_error", f"this server holds at most {self._max_voices} "
                           "created voices; delete one first", status=403)
        voice_id = str(uuid.uuid4())
        base = self._pick_local(gender, voice_id)
        note = (f"Local voice: speaks with the built-in voice '{base}' "
                f"({self._engine_of[base]} engine); no cloning from the uploaded audio.")
        record = {
            "id": voice_id, "name": name, "gender": gender, "tags": list(tags),
            "description": f"{description} ({note})" if description else note,
            "base_voice": base, "files": [p.name for p in files], "created_at": time.time(),
        }
        self._check_size(record)
        self._db.put(record)
        return self.get(voice_id)

    def update(self, voice_id: str, changes: Dict[str, Any]) -> Dict[str, Any]:
        """Apply the given keys (only those) and return the new voice object.

        Non-owners may only change ``starred`` (like the cloud); the legacy
        ``unfreeze`` key is accepted and does nothing.

        Raises:
            ApiError: not_found_error, permission_error (system voice), or
                invalid_request_error (a value of the wrong type).
        """
        with self._write_lock:
            return self._update(voice_id, changes)

    def _update(self, voice_id: str, changes: Dict[str, Any]) -> Dict[str, Any]:
        self.get(voice_id)  # existence check
        changes = {k: v for k, v in changes.items() if k in _UPDATABLE}
        _check_types(changes)
        record = self._db.record(voice_id)
        others = set(changes) - {"starred"}
        if others and record is None:
            raise ApiError("permission_error", "only 'starred' can be changed on a system voice")
        starred = changes.get("starred")
        if record is not None:
            record = {**record, **{k: changes[k] for k in others}}
            self._check_size(record)
            self._db.put(record, starred)
        elif starred is not None:
            self._db.star(voice_id, starred)
        return self.get(voice_id)

    def delete(self, voice_id: str) -> None:
        """Delete a created voice and its uploaded files.

        Raises:
            ApiError: not_found_error, or permission_error for a system voice.
        """
        with self._write_lock:
            record = self._db.record(voice_id)
            if record is None:
                self.get(voice_id)
                raise ApiError("permission_error", "system voices cannot be deleted")
            self._db.delete(voice_id)
        for name in record.get("files", []):
            (self._uploads / Path(name).name).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def discard_uploads(self, paths: Sequence[Path]) -> None:
        """Remove files saved for a creation that failed."""
        for path in paths:
            path.unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------

    def _system_ids(self) -> List[str]:
        return list(self._local) + [p for p in PRESET_VOICES if p not in self._local]

    def _pick_local(self, gender: Optional[str], key: str) -> str:
        """Choose a local voice, stable for ``key``.

        Preference: primary engine and same gender; any engine and same
        gender; primary engine; any voice.
        """
        primary = [i for i in self._local if self._engine_of[i] == self._primary]
        same = [i for i in self._local if gender and self._local[i].gender == gender]
        candidates = ([i for i in primary if i in same] or same or primary or list(self._local))
        return candidates[zlib.crc32(key.encode()) % len(candidates)]

    def _base_object(self, voice_id: str, name: str, owner: str, stars: Set[str]) -> Dict[str, Any]:
        return {"id": voice_id, "name": name, "owner": owner, "state": "ready",
                "starred": voice_id in stars, "type": "instant", "preview_url": None}

    def _local_object(self, voice: LocalVoice, stars: Set[str]) -> Dict[str, Any]:
        engine = self._engine_of[voice.id]
        return {**self._base_object(voice.id, voice.name, "system", stars), "gender": voice.gender,
                "tags": ["local", engine],
                "description": f"{voice.description} (local {engine} voice)"}

    def _preset_object(self, voice_id: str, stars: Set[str]) -> Dict[str, Any]:
        local = self._local[self._local_id(voice_id)]
        engine = self._engine_of[local.id]
        name = voice_id.replace("-", " ").title()
        return {**self._base_object(voice_id, name, "system", stars), "gender": local.gender,
                "tags": ["lmnt-system-id", engine],
                "description": (f"LMNT system voice id '{voice_id}', accepted locally and "
                                f"spoken by the local voice '{local.id}' ({engine} engine)")}

    def _created_object(self, record: Dict[str, Any], stars: Set[str]) -> Dict[str, Any]:
        return {**self._base_object(record["id"], record["name"], "me", stars),
                "gender": record.get("gender"), "tags": list(record.get("tags") or []),
                "description": record.get("description")}

    def _unknown(self, voice_id: str) -> ApiError:
        return ApiError("not_found_error", f"unknown voice {str(voice_id)[:80]!r}; "
                        "GET /v1/ai/voice/list shows the available voices")

    def _check_size(self, record: Dict[str, Any]) -> None:
        """Raise ApiError when a voice's own fields exceed the metadata bound."""
        fields = {k: record.get(k) for k in ("name", "description", "gender", "tags")}
        size = len(json.dumps(fields).encode("utf-8"))
        if size > self._max_metadata:
            raise ApiError("invalid_request_error", f"a voice's name, description and tags "
                           f"take {size} bytes; the limit is {self._max_metadata}", status=413)

    def _import_json(self) -> None:
        """Import a ``voices.json`` of earlier versions once, in one transaction."""
        path = self._dir / _STORE_FILE
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text("utf-8"))
            records = [dict(r, id=str(r["id"])) for r in data["voices"]]
            stars = [str(i) for i in data.get("starred", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"voice store {path} is corrupt ({exc}); "
                             "fix or move it away") from exc
        self._db.import_all(records, stars)
        os.replace(path, path.with_name(_STORE_FILE + ".imported"))

def _check_types(changes: Dict[str, Any]) -> None:
    """Raise ApiError unless every change has the type the API documents."""
    for key, value in changes.items():
        ok = {
            "name": isinstance(value, str) and bool(value.strip()),
            "description": value is None or isinstance(value, str),
            "gender": value is None or isinstance(value, str),
            "starred": isinstance(value, bool),
            "tags": isinstance(value, list) and all(isinstance(t, str) for t in value),
        }[key]
        if not ok:
            raise ApiError("invalid_request_error", f"invalid value for {key!r}")
