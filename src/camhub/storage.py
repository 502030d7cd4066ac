"""Where footage is kept: the :class:`Storage` interface and the built-in folder store.

A store keeps objects under keys (DESIGN §5)::

    <province>/<device>/<channel>/<UTC date>/<start>_<end>.mp4

Every object carries its SHA-256: :meth:`Storage.put` is given the digest the caller computed
and the store verifies it before the object becomes visible; a mismatch is refused with
:class:`DigestMismatch` and leaves nothing behind. Objects are streamed in both directions,
never read whole into memory. The API is synchronous (the uploader calls it from threads) and
every implementation is safe to call from several threads at once.

Errors (all under :class:`camhub.errors.CamhubError`)::

    StorageError
    ├── InvalidKey          a key that is not a safe relative path
    ├── ObjectNotFound      no object under that key
    ├── ObjectLocked        refused: the object is under a retention lock or a legal hold
    ├── DigestMismatch      the bytes do not have the SHA-256 they were announced with
    ├── StorageUnsupported  the backend cannot do this (e.g. locking on a bucket without it)
    └── StorageUnavailable  the store cannot be reached or failed (the uploader retries these)

:class:`FilesystemStorage` is the embedded default, a folder. Its retention lock and legal hold
are enforced by camhub only (a *software* lock): anyone with write access to the folder can
still delete the files, so a folder is never WORM. Use an S3-compatible store with object lock
(the ``camhub-storage-s3`` plugin) when the store itself must refuse deletion.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import json
import os
import re
import threading
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO, Self

import attrs

from camhub.errors import CamhubError

__all__ = [
    "CHUNK_SIZE",
    "DigestMismatch",
    "FilesystemStorage",
    "InvalidKey",
    "ObjectLocked",
    "ObjectNotFound",
    "Storage",
    "StorageCapabilities",
    "StorageError",
    "StorageUnavailable",
    "StorageUnsupported",
    "StoredObject",
    "segment_key",
    "sha256_file",
    "validate_key",
    "validate_sha256",
]

#: Bytes read or written at a time when streaming.
CHUNK_SIZE = 1024 * 1024
#: Longest key, in UTF-8 bytes (S3's limit).
MAX_KEY_BYTES = 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_META_SUFFIX = ".meta.json"
_TMP_PREFIX = ".camhub-tmp-"


# -- errors ---------------------------------------------------------------------------------------
class StorageError(CamhubError):
    """A storage operation failed. ``key`` names the object, when there is one."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key!r}: {message}" if key is not None else message)


class InvalidKey(StorageError):
    """The key is not a safe relative path (absolute, ``..``, backslash, control character …)."""


class ObjectNotFound(StorageError):
    """There is no object under the key."""


class ObjectLocked(StorageError):
    """Refused because the object is under a retention lock or a legal hold (or a lock cannot
    be shortened)."""


class DigestMismatch(StorageError):
    """The bytes do not have the SHA-256 they were announced (or stored) with."""


class StorageUnsupported(StorageError):
    """The backend, or this bucket, does not offer the operation (see ``capabilities``)."""


class StorageUnavailable(StorageError):
    """The store could not be reached or failed; retrying later may succeed."""


# -- values ---------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class StoredObject:
    """What a store knows of one object.

    :param key: its key.
    :param size: its size in bytes.
    :param sha256: its SHA-256, 64 lowercase hex digits.
    :param stored_at: when the store took it (UTC).
    :param retain_until: the end of its retention lock (UTC), ``None`` when not locked.
    :param legal_hold: whether a legal hold is on.
    """

    key: str
    size: int
    sha256: str
    stored_at: datetime
    retain_until: datetime | None = None
    legal_hold: bool = False

    def locked(self, now: datetime | None = None) -> bool:
        """Whether a delete must be refused at ``now`` (retention lock in force, or a hold)."""
        now = now or datetime.now(UTC)
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)


@attrs.frozen(kw_only=True)
class StorageCapabilities:
    """What a backend offers.

    :param retention_lock: :meth:`Storage.lock` works (a delete before the date is refused).
    :param legal_hold: :meth:`Storage.hold` works.
    :param enforced_by_store: the store itself refuses deletion of locked objects (WORM), not
        only camhub.
    """

    retention_lock: bool = False
    legal_hold: bool = False
    enforced_by_store: bool = False


# -- keys and digests -----------------------------------------------------------------------------
def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidKey`.

    A key is a relative ``/``-separated path in NFC Unicode: no leading or trailing ``/``, no
    empty, ``.`` or ``..`` segment, no segment starting with ``.`` (reserved for temporary
    files), no backslash, NUL or other control character, at most 1024 UTF-8 bytes, and not
    ending in ``.meta.json`` (reserved for the folder store's sidecars).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey("a key is a non-empty string", key=str(key))
    if "\\" in key:
        raise InvalidKey("backslashes are not allowed in keys", key=key)
    if key.startswith("/"):
        raise InvalidKey("a key is a relative path", key=key)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in key):
        raise InvalidKey("control, format or unassigned characters are not allowed in keys", key=key)
    if unicodedata.normalize("NFC", key) != key:
        raise InvalidKey("a key must be in Unicode normal form NFC", key=key)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"a key is at most {MAX_KEY_BYTES} UTF-8 bytes", key=key)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey("empty, '.' and '..' path segments are not allowed", key=key)
        if part.startswith("."):
            raise InvalidKey("a path segment may not start with '.'", key=key)
    if key.endswith(_META_SUFFIX):
        raise InvalidKey(f"keys ending in {_META_SUFFIX!r} are reserved", key=key)
    return key


def validate_sha256(sha256: str, *, key: str | None = None) -> str:
    """Return ``sha256`` in lowercase if it is 64 hex digits, else raise :class:`DigestMismatch`."""
    value = sha256.lower() if isinstance(sha256, str) else ""
    if not _SHA256_RE.match(value):
        raise DigestMismatch("the SHA-256 must be 64 hexadecimal digits", key=key)
    return value


def segment_key(province: str, device: str, channel: int, start: datetime, end: datetime) -> str:
    """The DESIGN §5 key of a segment: ``<province>/<device>/<channel>/<UTC date>/<start>_<end>.mp4``.

    ``start`` and ``end`` must be timezone-aware; they are written in UTC as ``HHMMSS``, with
    the UTC date of ``start`` as the folder.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("segment times must be timezone-aware")
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    day: date = s.date()
    return validate_key(
        f"{province}/{device}/{channel}/{day.isoformat()}/{s.strftime('%H%M%S')}_{e.strftime('%H%M%S')}.mp4"
    )


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, streamed through one small buffer (no copy per chunk:
    many recorder threads hash their segments at the same grid instant)."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


# -- the interface --------------------------------------------------------------------------------
class Storage(abc.ABC):
    """A store of objects, each under a key and with its SHA-256 (see the module documentation).

    Implementations are thread-safe and synchronous. Every failure is a :class:`StorageError`.
    """

    #: What this store offers; may be decided per instance (e.g. by the bucket's settings).
    capabilities: StorageCapabilities = StorageCapabilities()

    @abc.abstractmethod
    def put(self, key: str, path: Path, sha256: str) -> StoredObject:
        """Store the file at ``path`` under ``key``; the store verifies ``sha256``.

        Replaces an object of the same key unless that one is locked or held.

        :raises DigestMismatch: the file's bytes do not have ``sha256`` (nothing is stored).
        :raises ObjectLocked: an object under ``key`` is locked or held.
        """

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open the object for streaming reads; the caller closes it.

        :raises ObjectNotFound: no object under ``key``.
        """

    @abc.abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """What the store knows of the object, or ``None`` if there is none."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object.

        :raises ObjectLocked: it is under a retention lock or a legal hold.
        :raises ObjectNotFound: no object under ``key``.
        """

    def lock(self, key: str, until: datetime) -> StoredObject:
        """Lock the object against deletion until ``until`` (timezone-aware). A lock can be
        extended, never shortened.

        :raises StorageUnsupported: the store does not offer retention locks.
        :raises ObjectLocked: ``until`` is earlier than the lock in force.
        """
        raise StorageUnsupported(f"{type(self).__name__} has no retention lock", key=key)

    def hold(self, key: str, on: bool) -> StoredObject:
        """Put a legal hold on the object (``on=True``), or lift it.

        :raises StorageUnsupported: the store does not offer legal holds.
        """
        raise StorageUnsupported(f"{type(self).__name__} has no legal hold", key=key)

    def get(self, key: str, dest: Path) -> StoredObject:
        """Stream the object into the file ``dest`` and verify its SHA-256 on the way.

        ``dest`` appears only once complete and verified (written to a temporary file beside it,
        then renamed).

        :raises ObjectNotFound: no object under ``key``.
        :raises DigestMismatch: the stored bytes no longer have their SHA-256 (the object is
            corrupt); ``dest`` is not written.
        """
        info = self.head(key)
        if info is None:
            raise ObjectNotFound("no such object", key=key)
        tmp = dest.with_name(f"{_TMP_PREFIX}{dest.name}.{uuid.uuid4().hex}")
        digest = hashlib.sha256()
        try:
            with self.open(key) as src, tmp.open("wb") as out:
                while chunk := src.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != info.sha256:
                raise DigestMismatch(
                    f"stored bytes have SHA-256 {digest.hexdigest()}, expected {info.sha256}", key=key
                )
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return info

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections; the store is not used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the folder store -----------------------------------------------------------------------------
class FilesystemStorage(Storage):
    """A folder as a store (the embedded default: "the central store is a folder").

    An object ``a/b/c.mp4`` is the file ``<root>/a/b/c.mp4``; its SHA-256, size, time and
    lock/hold state are in the sidecar ``<root>/a/b/c.mp4.meta.json``. A put writes a temporary
    file in the same folder while hashing, fsyncs it, checks the digest, writes and fsyncs the
    sidecar, renames both into place (sidecar first) and fsyncs the folder; an object is visible
    only when its file and its sidecar agree on the size.

    Retention lock and legal hold are enforced by this class only: it is a software lock, and
    the folder is not WORM (anyone with write access to it can delete the files).
    """

    capabilities = StorageCapabilities(retention_lock=True, legal_hold=True, enforced_by_store=False)

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        # Striped locks: operations on one key are serialised without a lock per key ever made.
        self._stripes = tuple(threading.Lock() for _ in range(64))

    def __repr__(self) -> str:
        return f"FilesystemStorage({str(self.root)!r})"

    # -- helpers
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + _META_SUFFIX)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        with self._stripes[hash(key) % len(self._stripes)]:
            yield

    def _read_meta(self, key: str, path: Path) -> StoredObject | None:
        try:
            raw = self._meta_path(path).read_text(encoding="utf-8")
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the object: {exc.strerror}", key=key) from None
        try:
            meta = json.loads(raw)
            info = StoredObject(
                key=key,
                size=int(meta["size"]),
                sha256=str(meta["sha256"]),
                stored_at=datetime.fromisoformat(meta["stored_at"]),
                retain_until=datetime.fromisoformat(meta["retain_until"])
                if meta.get("retain_until")
                else None,
                legal_hold=bool(meta.get("legal_hold", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"the sidecar is damaged: {type(exc).__name__}", key=key) from None
        if info.size != size:
            return None  # a put or delete was interrupted between the two renames
        return info

    def _write_meta(self, path: Path, info: StoredObject) -> Path:
        """Write the sidecar to a temporary file (fsynced) and return its path."""
        meta = {
            "key": info.key,
            "size": info.size,
            "sha256": info.sha256,
            "stored_at": info.stored_at.isoformat(),
            "retain_until": info.retain_until.isoformat() if info.retain_until else None,
            "legal_hold": info.legal_hold,
        }
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}{_META_SUFFIX}.{uuid.uuid4().hex}")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _update_meta(self, key: str, info: StoredObject) -> StoredObject:
        path = self._path(key)
        tmp = self._write_meta(path, info)
        os.replace(tmp, self._meta_path(path))
        self._fsync_dir(path.parent)
        return info

    # -- the interface
    def put(self, key: str, path: Path, sha256: str) -> StoredObject:
        target = self._path(key)
        want = validate_sha256(sha256, key=key)
        with self._locked(key):
            old = self._read_meta(key, target)
            if old is not None and old.locked():
                raise ObjectLocked(
                    "an object under this key is locked or held; it cannot be replaced", key=key
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise InvalidKey("a parent of this key is an object", key=key) from None
            if target.is_dir():
                raise InvalidKey("this key is a prefix of other objects", key=key)
            tmp = target.with_name(f"{_TMP_PREFIX}{target.name}.{uuid.uuid4().hex}")
            meta_tmp: Path | None = None
            digest = hashlib.sha256()
            size = 0
            try:
                try:
                    with Path(path).open("rb") as src, tmp.open("wb") as out:
                        while chunk := src.read(CHUNK_SIZE):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                        out.flush()
                        os.fsync(out.fileno())
                except FileNotFoundError:
                    raise StorageError(f"no file {str(path)!r} to store", key=key) from None
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                        raise StorageUnavailable(f"cannot write: {exc.strerror}", key=key) from None
                    raise StorageError(f"cannot write: {exc.strerror}", key=key) from None
                got = digest.hexdigest()
                if got != want:
                    raise DigestMismatch(f"the bytes have SHA-256 {got}, not {want}", key=key)
                info = StoredObject(key=key, size=size, sha256=got, stored_at=datetime.now(UTC))
                meta_tmp = self._write_meta(target, info)
                os.replace(meta_tmp, self._meta_path(target))
                os.replace(tmp, target)
                self._fsync_dir(target.parent)
                return info
            finally:
                for leftover in (tmp, meta_tmp):
                    if leftover is not None:
                        with contextlib.suppress(FileNotFoundError):
                            leftover.unlink()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if self._read_meta(key, path) is None:
            raise ObjectNotFound("no such object", key=key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound("no such object", key=key) from None

    def head(self, key: str) -> StoredObject | None:
        return self._read_meta(key, self._path(key))

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if "\\" in prefix or prefix.startswith("/") or ".." in prefix.split("/"):
            raise InvalidKey("not a valid key prefix", key=prefix)
        folder_part = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder_part.split("/")) if folder_part else self.root
        yield from self._walk(start, prefix)

    def _walk(self, folder: Path, prefix: str) -> Iterator[StoredObject]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Key order: "a/b" sorts by the full key, so a folder "x" comes where "x/" would.
        items: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(_META_SUFFIX):
                continue
            key = Path(entry.path).relative_to(self.root).as_posix()
            items.append((key + "/" if entry.is_dir(follow_symlinks=False) else key, entry))
        for key, entry in sorted(items):
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), prefix)
            elif key.startswith(prefix):
                info = self._read_meta(key, Path(entry.path))
                if info is not None:
                    yield info

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked(key):
            info = self._read_meta(key, path)
            if info is None:
                raise ObjectNotFound("no such object", key=key)
            if info.legal_hold:
                raise ObjectLocked("the object is under a legal hold", key=key)
            if info.locked():
                raise ObjectLocked(f"the object is locked until {info.retain_until}", key=key)
            # Data first: a leftover sidecar without its file is not an object.
            path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(path).unlink()
            self._fsync_dir(path.parent)

    def lock(self, key: str, until: datetime) -> StoredObject:
        if until.tzinfo is None:
            raise ValueError("the lock date must be timezone-aware")
        until = until.astimezone(UTC)
        with self._locked(key):
            info = self._read_meta(key, self._path(key))
            if info is None:
                raise ObjectNotFound("no such object", key=key)
            if info.retain_until is not None and until < info.retain_until:
                raise ObjectLocked(f"the lock until {info.retain_until} cannot be shortened", key=key)
            return self._update_meta(key, attrs.evolve(info, retain_until=until))

    def hold(self, key: str, on: bool) -> StoredObject:
        with self._locked(key):
            info = self._read_meta(key, self._path(key))
            if info is None:
                raise ObjectNotFound("no such object", key=key)
            return self._update_meta(key, attrs.evolve(info, legal_hold=on))
